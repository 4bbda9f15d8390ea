import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { IDEMPOTENCY_RETENTION_MS, OUTBOX_RETENTION_MS, OUTBOX_ROUTES, deliveryBackoffMs } from './delivery-policy.js';
import { DELIVERY_QUEUES } from './telematics.tokens.js';
import type { DeliveryQueues } from './delivery-queue.js';
import type { OutboxTopic } from './outbox-message.entity.js';

/** The tables whose open rows the sweeper re-enqueues, and what is "open" in each. */
const SWEPT: Array<{ table: string; open: string; topic: OutboxTopic }> = [
  { table: 'deliveries', open: "status IN ('pending', 'sent')", topic: 'vehicle-command' },
  { table: 'partner_notifications', open: "status IN ('pending', 'sending')", topic: 'partner-notification' },
];

const BATCH = 500;

/**
 * Reconciliation: PostgreSQL is the truth, Redis only transport. Any delivery still open well
 * after its due time (job lost in Redis, attempts exhausted, ack never posted) is enqueued
 * again under a new job id. Also trims published outbox rows and old idempotency records.
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
    for (const swept of SWEPT) count += await this.sweepTable(swept.table, swept.open, swept.topic);
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

  private sweepTable(table: string, open: string, topic: OutboxTopic): Promise<number> {
    const route = OUTBOX_ROUTES[topic];
    return this.dataSource.transaction(async (manager) => {
      const overdue = await manager.query<
        Array<{ id: string; attempts: number; sweeps: number; correlationId: string | null }>
      >(
        `SELECT id, attempts, sweeps, correlation_id AS "correlationId"
           FROM ${table}
          WHERE ${open}
            AND next_attempt_at < now() - make_interval(secs => $1::double precision / 1000)
          ORDER BY next_attempt_at
          LIMIT $2
          FOR UPDATE SKIP LOCKED`,
        [this.config.delivery.sweepGraceMs, BATCH],
      );
      if (overdue.length === 0) return 0;
      await this.queues[route.queue].addBulk(
        overdue.map((row) => ({
          name: route.job,
          data: { deliveryId: row.id, correlationId: row.correlationId },
          opts: { jobId: `${row.id}.sweep${row.sweeps + 1}` },
        })),
      );
      for (const row of overdue) {
        const next = new Date(Date.now() + deliveryBackoffMs(row.attempts + 1, this.config.delivery));
        await manager.query(`UPDATE ${table} SET sweeps = sweeps + 1, next_attempt_at = $2 WHERE id = $1`, [
          row.id,
          next,
        ]);
      }
      return overdue.length;
    });
  }
}
