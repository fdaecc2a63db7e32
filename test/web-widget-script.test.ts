/**
 * The shipped widget.js run against a stand-in DOM and WebSocket (node:vm): what it keeps in localStorage when the
 * gateway cannot be reached, and when the gateway says the visitor token is no longer valid.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import vm from 'node:vm';

const WIDGET = readFileSync(new URL('../adapters/web/widget.js', import.meta.url), 'utf8');
const TOKEN = 'v1.VISITORabcdef.9999999999.mac';
const AFTER = '01J0000000000000000000000A';

/** A socket the test drives: `open()`, `receive(frame)`, `close(code)` as the gateway would. */
class ScriptedSocket {
  static made: ScriptedSocket[] = [];
  readyState = 0;
  onopen?: () => void;
  onmessage?: (ev: { data: string }) => void;
  onclose?: (ev: { code: number }) => void;
  constructor(readonly url: string) {
    ScriptedSocket.made.push(this);
  }
  readonly sent: Array<Record<string, unknown>> = [];
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  close(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

function runWidget() {
  ScriptedSocket.made = [];
  const storage = new Map([
    ['gw.web.token', TOKEN],
    ['gw.web.after', AFTER],
  ]);
  const timers: Array<() => void> = [];
  const elements: Array<Record<string, any>> = [];
  const el = (tag?: string) => {
    const element = { tag, appendChild() {}, setAttribute() {}, style: {}, className: '', value: '', focus() {} };
    elements.push(element);
    return element;
  };
  vm.runInNewContext(WIDGET, {
    document: {
      currentScript: { src: 'https://gw.example/webhooks/web/widget.js', getAttribute: () => null },
      createElement: el,
      getElementById: () => null,
      body: el(),
      head: el(),
      documentElement: el(),
    },
    location: { href: 'https://shop.example/' },
    URL,
    localStorage: { getItem: (k: string) => storage.get(k) ?? null, setItem: (k: string, v: string) => storage.set(k, v), removeItem: (k: string) => storage.delete(k) },
    WebSocket: ScriptedSocket,
    setTimeout: (fn: () => void) => timers.push(fn),
    Math,
    Date,
    JSON,
  });
  /** Runs the reconnect the widget scheduled, returning the socket it opened. */
  const reconnect = () => {
    assert.equal(timers.length, 1, 'one reconnect scheduled');
    timers.shift()!();
    return ScriptedSocket.made.at(-1)!;
  };
  /** Types `text` into the widget and submits it, as a visitor would. */
  const type = (text: string) => {
    elements.find((e) => e.tag === 'input')!.value = text;
    elements.find((e) => e.tag === 'form')!.onsubmit({ preventDefault() {} });
  };
  const runTimers = () => timers.splice(0).forEach((fn) => fn());
  return { storage, reconnect, type, runTimers, first: ScriptedSocket.made[0]! };
}

describe('widget.js sending', () => {
  it('sends a message refused for now (rate_limited) again a little later, and stops once it is acknowledged', () => {
    const { type, runTimers, first } = runWidget();
    first.open();
    type('hello');
    const [frame] = first.sent;
    assert.equal(frame?.text, 'hello');
    first.receive({ type: 'error', error: 'rate_limited', clientMessageId: frame!.clientMessageId, message: 'too many messages' });
    runTimers();
    assert.deepEqual(first.sent, [frame, frame]);
    first.receive({ type: 'ack', clientMessageId: frame!.clientMessageId, id: '01J0000000000000000000000B', duplicate: false });
    first.receive({ type: 'error', error: 'rate_limited', clientMessageId: frame!.clientMessageId, message: 'late' });
    runTimers();
    assert.equal(first.sent.length, 2, 'an acknowledged message is not sent again');
  });
});

describe('widget.js reconnects', () => {
  it('keeps the visitor and the last reply seen through any number of failed connects', () => {
    const { storage, reconnect, first } = runWidget();
    let socket = first;
    for (let i = 0; i < 8; i++) {
      socket.close(1006);
      socket = reconnect();
      assert.match(socket.url, new RegExp(`token=${encodeURIComponent(TOKEN).replace(/\./g, '\\.')}&after=${AFTER}`));
    }
    assert.equal(storage.get('gw.web.token'), TOKEN);
    assert.equal(storage.get('gw.web.after'), AFTER);
  });

  it('starts a new visitor when the gateway refuses the token (error frame, close 4401)', () => {
    const { storage, reconnect, first } = runWidget();
    first.open();
    first.receive({ type: 'error', error: 'expired_token', message: 'the visitor token is not valid' });
    first.close(4401);
    assert.equal(storage.get('gw.web.token'), undefined);
    assert.equal(storage.get('gw.web.after'), undefined);
    const next = reconnect();
    assert.doesNotMatch(next.url, /token=|after=/);
  });
});
