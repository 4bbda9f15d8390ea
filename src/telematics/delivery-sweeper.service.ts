import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { IDEMPOTENCY_RETENTION_MS, OUTBOX_RETENTION_MS, OUTBOX_ROUTES, deliveryBackoffMs } from './delivery-policy.js';
import { DELIVERY_QUEUES } from './telematics.tokens.js';
import type { DeliveryQueues } from './delivery-queue.js';
import type { OutboxTopic } from './outbox-message.entity.js';

/**
 * The tables whose open rows the sweeper re-enqueues, what is "open" in each, and how rows are
 * delivered: in `position` order within a `stream` (a car's commands, a key's notifications),
 * a job for one row sending every open row of its stream before it.
 */
interface Swept {
  table: string;
  open: string;
  /** What a sweep sets besides the due time: e.g. releasing a claim whose lease ran out. */
  release?: string;
  stream: string;
  position: string;
  topic: OutboxTopic;
}
const SWEPT: Swept[] = [
  {
    table: 'deliveries',
    open: "status IN ('pending', 'sent')",
    stream: 'vehicle_id',
    position: 'seq',
    topic: 'vehicle-command',
  },
  {
    table: 'partner_notifications',
    open: "status IN ('pending', 'sending')",
    // A worker that died while sending left its claim: overdue means the lease is over.
    release: "status = 'pending'",
    stream: 'key_identifier',
    position: 'key_version',
    topic: 'partner-notification',
  },
];

const BATCH = 500;

/**
 * Reconciliation: PostgreSQL is the truth, Redis only transport. Any delivery still open well
 * after its due time (job lost in Redis, attempts exhausted, ack never posted) is enqueued
 * again under a new job id: one job per car (or key), for its newest overdue row, which sends
 * the older ones first. So a car offline with hundreds of waiting commands costs one job per
 * sweep, not hundreds. Also trims published outbox rows and old idempotency records.
 */
@Injectable()
export class DeliverySweeperService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DeliverySweeperService.name);
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(DELIVERY_QUEUES) private readonly queues: DeliveryQueues,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = this.sweepOnce()
        .then((count) => count > 0 && this.logger.log({ msg: 're-enqueued overdue deliveries', count }))
        .catch((error: unknown) => this.logger.warn({ msg: 'sweep failed; will retry', error: String(error) }))
        .finally(() => (this.sweeping = undefined));
    }, this.config.delivery.sweepIntervalMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  /** One pass; returns how many deliveries and notifications it re-enqueued. */
  async sweepOnce(): Promise<number> {
    let count = 0;
    for (const swept of SWEPT) count += await this.sweepTable(swept);
    await this.dataSource.query(
      `DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1::double precision / 1000)`,
      [OUTBOX_RETENTION_MS],
    );
    await this.dataSource.query(
      `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1::double precision / 1000)`,
      [IDEMPOTENCY_RETENTION_MS],
    );
    return count;
  }

  /**
   * Pushes the due time of overdue rows (and releases expired claims) in one transaction, then
   * enqueues after the commit, so that a job never reads a row the sweep has not released yet.
   * If Redis refuses, the rows come round again after their new due time.
   */
  private async sweepTable({ table, open, release, stream, position, topic }: Swept): Promise<number> {
    const route = OUTBOX_ROUTES[topic];
    const { targets, count } = await this.dataSource.transaction(async (manager) => {
      const overdue = await manager.query<
        Array<{
          id: string;
          stream: string;
          position: string;
          attempts: number;
          sweeps: number;
          correlationId: string | null;
        }>
      >(
        `SELECT id, ${stream}::text AS stream, ${position}::text AS position, attempts, sweeps,
                correlation_id AS "correlationId"
           FROM ${table}
          WHERE ${open}
            AND next_attempt_at < now() - make_interval(secs => $1::double precision / 1000)
          ORDER BY next_attempt_at
          LIMIT $2
          FOR UPDATE SKIP LOCKED`,
        [this.config.delivery.sweepGraceMs, BATCH],
      );
      const streams = new Map<string, typeof overdue>();
      for (const row of overdue) streams.set(row.stream, [...(streams.get(row.stream) ?? []), row]);
      for (const rows of streams.values()) {
        const attempts = Math.max(...rows.map((row) => row.attempts));
        const next = new Date(Date.now() + deliveryBackoffMs(attempts + 1, this.config.delivery));
        await manager.query(
          `UPDATE ${table} SET sweeps = sweeps + 1, next_attempt_at = $2${release ? `, ${release}` : ''}
            WHERE id = ANY($1::uuid[])`,
          [rows.map((row) => row.id), next],
        );
      }
      return {
        count: overdue.length,
        targets: [...streams.values()].map((rows) =>
          rows.reduce((newest, row) => (BigInt(row.position) > BigInt(newest.position) ? row : newest)),
        ),
      };
    });
    if (targets.length === 0) return 0;
    await this.queues[route.queue].addBulk(
      targets.map((row) => ({
        name: route.job,
        data: { deliveryId: row.id, correlationId: row.correlationId },
        opts: { jobId: `${row.id}.sweep${row.sweeps + 1}` },
      })),
    );
    return count;
  }
}
