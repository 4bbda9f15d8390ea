import { request } from 'node:https';

/**
 * An event the car reports to the server (`POST /vehicle/v1/events`): a friend it enrolled
 * offline (§7 step 5) or a key it revoked from an owner's revocation relay (§4.7).
 */
export interface VehicleReport {
  readonly type: 'FRIEND_ENROLLED' | 'KEY_DELETED_AT_CAR' | 'KEY_REVOKED_BY_RELAY';
  readonly keyId: string;
  readonly occurredAt: string;
}

/** The server's answer to one reported event (`applied`, `no-op`, `unknown-key`, …). */
export interface VehicleReportResult {
  readonly report: VehicleReport;
  readonly status: number;
  readonly outcome?: string;
  readonly state?: string;
}

export interface VehicleEventReporterOptions {
  /** Base URL of the Vehicle OEM server's mTLS listener; a function is read at each call. */
  readonly baseUrl: string | (() => string);
  /** The vehicle certificate from provisioning and its key (PEM): the mTLS client identity. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  /** The Vehicle OEM root: the only trust anchor for the server's certificate. */
  readonly vehicleOemRootPem: string;
}

/**
 * The car's outbox to the server (§7 step 5): events queue while the car is out of coverage and
 * are posted over mTLS with the vehicle certificate when it is online. A report the server
 * answered (2xx or 4xx) leaves the queue; a network failure or 5xx keeps it for the next flush.
 */
export class VehicleEventReporter {
  readonly results: VehicleReportResult[] = [];
  readonly #options: VehicleEventReporterOptions;
  readonly #queue: VehicleReport[] = [];
  #online = true;
  #flushing: Promise<void> | undefined;

  constructor(options: VehicleEventReporterOptions) {
    this.#options = options;
  }

  get pending(): readonly VehicleReport[] {
    return [...this.#queue];
  }

  get online(): boolean {
    return this.#online;
  }

  /** Queues a report and sends it at once when online. */
  report(report: VehicleReport): void {
    this.#queue.push(report);
    if (this.#online) void this.flush();
  }

  /** Out of coverage: reports wait; back online: the queue is flushed. */
  setOnline(online: boolean): void {
    this.#online = online;
    if (online) void this.flush();
  }

  /** Posts every queued report (one at a time, in order); resolves when the queue was tried. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#online && this.#queue.length > 0) {
      const report = this.#queue[0];
      let answer: { status: number; body: unknown };
      try {
        answer = await this.#post({ events: [report] });
      } catch {
        return; // network failure: retried at the next flush
      }
      if (answer.status >= 500) return;
      this.#queue.shift();
      const result = (answer.body as { results?: Array<{ outcome?: unknown; state?: unknown }> } | null)?.results?.[0];
      this.results.push({
        report,
        status: answer.status,
        ...(typeof result?.outcome === 'string' ? { outcome: result.outcome } : {}),
        ...(typeof result?.state === 'string' ? { state: result.state } : {}),
      });
    }
  }

  #post(body: unknown): Promise<{ status: number; body: unknown }> {
    const base = typeof this.#options.baseUrl === 'string' ? this.#options.baseUrl : this.#options.baseUrl();
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL('/vehicle/v1/events', base),
        {
          method: 'POST',
          agent: false,
          cert: this.#options.certificatePem,
          key: this.#options.privateKeyPem,
          ca: this.#options.vehicleOemRootPem,
          rejectUnauthorized: true,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
}
