/** Shared pieces of the hand-off tests: a verifying Standard Webhooks receiver and small API helpers. */
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { startRecorder, type RecordedRequest } from '../helpers/http-recorder.js';

export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

export interface ReceivedEvent {
  webhookId: string;
  type: string;
  data: any;
  request: RecordedRequest;
}

/** A receiver that verifies every request with the standardwebhooks library and records the verified events. */
export async function startWebhookReceiver(secret: string) {
  const recorder = await startRecorder();
  const verifier = new Webhook(secret);
  const verified: ReceivedEvent[] = [];
  const invalid: RecordedRequest[] = [];
  let answer: (req: RecordedRequest) => { status: number; headers?: Record<string, string> } = () => ({ status: 204 });
  recorder.setHandler((req, res) => {
    let payload: { type: string; data: any };
    try {
      payload = verifier.verify(req.text, req.headers as Record<string, string>) as { type: string; data: any };
    } catch {
      invalid.push(req);
      res.statusCode = 400;
      return void res.end('bad signature');
    }
    const { status, headers } = answer(req);
    res.writeHead(status, headers);
    res.end();
    if (status >= 200 && status < 300) verified.push({ webhookId: String(req.headers['webhook-id']), type: payload.type, data: payload.data, request: req });
  });
  return {
    url: recorder.url,
    requests: recorder.requests,
    /** Events answered with 2xx, in arrival order. */
    verified,
    invalid,
    answerWith(fn: typeof answer) {
      answer = fn;
    },
    close: () => recorder.close(),
  };
}

export function api(base: string, key: string | undefined) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(key && { authorization: `Bearer ${key}` }), ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
}
