import { request as httpRequest, type IncomingMessage } from 'node:http';

/** An HTTP answer with its body parsed as JSON when it is JSON (the text otherwise). */
export interface HttpResult<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export interface HttpJsonOptions {
  /** Bearer token (operator token on the admin listener). */
  token?: string;
  body?: unknown;
  /** Sent as is instead of `body` (malformed-input tests). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

/** The body as JSON when it parses, else the text. */
export function parseBody<T>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return text as unknown as T;
  }
}

/** Reads a whole response: status, headers, the text and the body parsed when it is JSON. */
export function readResponse<T>(
  res: IncomingMessage,
  resolve: (result: HttpResult<T>) => void,
  reject: (error: Error) => void,
): void {
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parseBody<T>(text), text });
  });
  res.on('error', reject);
}

/** What a request sends: `rawBody` as is, else `body` as JSON, else nothing. */
export function requestPayload(options: { body?: unknown; rawBody?: string | Buffer }): string | Buffer | undefined {
  if (options.rawBody !== undefined) return options.rawBody;
  return options.body !== undefined ? JSON.stringify(options.body) : undefined;
}

/** Plain HTTP with a JSON body: the server's admin listener and the simulator's control API. */
export function httpJson<T = unknown>(
  method: string,
  url: string,
  options: HttpJsonOptions = {},
): Promise<HttpResult<T>> {
  const payload = requestPayload(options);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        headers: {
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
      },
      (res) => readResponse(res, resolve, reject),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls `probe` until `accept` holds; throws with the last value after `timeoutMs`. */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  accept: (value: T) => boolean,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await probe();
  while (!accept(last)) {
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    last = await probe();
  }
  return last;
}
