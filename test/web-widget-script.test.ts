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
  send(): void {}
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
  const el = () => ({ appendChild() {}, setAttribute() {}, style: {}, className: '', focus() {} });
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
  return { storage, reconnect, first: ScriptedSocket.made[0]! };
}

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
