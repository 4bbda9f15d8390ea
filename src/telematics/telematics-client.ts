import { Agent, request } from 'node:https';

export type TelematicsOutcome =
  { kind: 'acked'; ack: string } | { kind: 'accepted' } | { kind: 'rejected'; status: number; detail: string };

/** The car could not be reached or did not answer in time: retry later. */
export class VehicleUnreachableError extends Error {
  override readonly name = 'VehicleUnreachableError';
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * HTTPS client for cars' telematics endpoints. TLS verification stays on: the endpoint must
 * present a certificate chained to the configured telematics trust anchors.
 */
export class TelematicsClient {
  private readonly agent: Agent;

  constructor(
    caPem: string,
    private readonly timeoutMs: number,
  ) {
    this.agent = new Agent({ ca: caPem, keepAlive: true, maxSockets: 64, rejectUnauthorized: true });
  }

  send(url: string, command: string): Promise<TelematicsOutcome> {
    const body = Buffer.from(JSON.stringify({ command }));
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': body.length, accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new VehicleUnreachableError('response from the car is too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            if (status >= 500 || status === 408 || status === 429) {
              reject(new VehicleUnreachableError(`car answered ${status}`));
              return;
            }
            if (status === 202) {
              resolve({ kind: 'accepted' });
              return;
            }
            if (status === 200) {
              const ack = parseAck(text);
              if (ack) resolve({ kind: 'acked', ack });
              else resolve({ kind: 'rejected', status, detail: 'the car answered 200 without an ack' });
              return;
            }
            resolve({ kind: 'rejected', status, detail: text.slice(0, 500) });
          });
          res.on('error', (error) => reject(new VehicleUnreachableError(error.message)));
        },
      );
      req.on('timeout', () => req.destroy(new VehicleUnreachableError(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (error) =>
        reject(error instanceof VehicleUnreachableError ? error : new VehicleUnreachableError(error.message)),
      );
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function parseAck(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { ack?: unknown };
    return typeof parsed.ack === 'string' ? parsed.ack : undefined;
  } catch {
    return undefined;
  }
}
