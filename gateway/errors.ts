/** Errors that become an HTTP answer: one JSON shape `{error, message}` with a stable machine-readable code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);
export const unauthorized = (code: string, message: string) => new HttpError(401, code, message);
export const forbidden = (code: string, message: string) => new HttpError(403, code, message);
export const notFound = (code: string, message: string) => new HttpError(404, code, message);

/** Parses a JSON request body kept as raw bytes; a malformed one is the client's error, not ours. */
export function parseJsonBody(raw: Buffer | undefined): unknown {
  if (!raw || raw.length === 0) throw badRequest('empty_body', 'the request body is empty; a JSON object was expected');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest('malformed_json', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}
