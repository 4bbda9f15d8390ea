import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { AppMetrics } from '../metrics/metrics.js';
import { onOutboxCommitted, outboxCommittedChannel } from './outbox-wake.js';
import { OUTBOX_ROUTES } from './delivery-policy.js';
import { DELIVERY_QUEUES, WORKER_REDIS } from './telematics.tokens.js';
import type { DeliveryQueues } from './delivery-queue.js';
import type { OutboxTopic } from './outbox-message.entity.js';
import { RELAXED_COMMIT, prepared, runPrepared } from '../database/prepared.js';

const BATCH = 200;
const MAX_FAILURE_BACKOFF_MS = 5_000;

/**
 * Claims and marks a batch of unpublished rows; the transaction's rollback unmarks them. A mark
 * lost in a database crash only publishes the rows again: the job id is the row id, and a
 * delivery already acknowledged is not sent twice.
 */
const CLAIM_BATCH = prepared(
  `WITH ${RELAXED_COMMIT}
  UPDATE outbox SET published_at = now()
           FROM relaxed_commit
          WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id, topic, delivery_id AS "deliveryId", correlation_id AS "correlationId", created_at AS at`,
);

/**
 * Moves outbox rows to BullMQ (job id = outbox id, so a row published twice is one job) and
 * marks them published in the same transaction. If Redis is down the transaction rolls back,
 * the rows stay, and the relay backs off: nothing is lost.
 */
@Injectable()
export class OutboxRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OutboxRelayService.name);
  private running = false;
  private woken = false;
  private sleeping?: () => void;
  private stopLocalWake?: () => void;
  private subscriber?: Redis;
  private loop?: Promise<void>;
  private failures = 0;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(DELIVERY_QUEUES) private readonly queues: DeliveryQueues,
    @Inject(WORKER_REDIS) private readonly connection: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() private readonly metrics?: AppMetrics,
  ) {}

  onApplicationBootstrap(): void {
    this.running = true;
    this.stopLocalWake = onOutboxCommitted(this.dataSource, () => this.wake());
    void this.subscribe();
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.running = false;
    this.stopLocalWake?.();
    this.sleeping?.();
    await this.loop;
    this.subscriber?.disconnect();
  }

  /** Publishes one batch; returns how many rows it moved. */
  async relayOnce(): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      // Claim and mark in one statement; if Redis refuses the jobs, the rollback unmarks them.
      const rows = await runPrepared<{
        id: string;
        topic: OutboxTopic;
        deliveryId: string;
        correlationId: string | null;
        at: Date;
      }>(manager, CLAIM_BATCH, [BATCH]);
      if (rows.length === 0) return 0;
      rows.sort((a, b) => a.at.getTime() - b.at.getTime());
      for (const topic of Object.keys(OUTBOX_ROUTES) as OutboxTopic[]) {
        const route = OUTBOX_ROUTES[topic];
        const batch = rows.filter((row) => row.topic === topic);
        if (batch.length === 0) continue;
        await this.queues[route.queue].addBulk(
          batch.map((row) => ({
            name: route.job,
            data: { deliveryId: row.deliveryId, correlationId: row.correlationId },
            opts: { jobId: row.id },
          })),
        );
      }
      const now = Date.now();
      for (const row of rows) {
        this.metrics?.relayLag.observe({ topic: row.topic }, Math.max(0, now - row.at.getTime()) / 1000);
        this.logger.debug({
          msg: 'outbox row published',
          topic: row.topic,
          jobId: row.id,
          correlationId: row.correlationId,
        });
      }
      return rows.length;
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      // A wake-up from now on means rows this pass may not see: go round again.
      this.woken = false;
      let moved = 0;
      try {
        moved = await this.relayOnce();
        if (this.failures > 0) this.logger.log({ msg: 'outbox relay recovered', after: this.failures });
        this.failures = 0;
      } catch (error) {
        this.failures += 1;
        if (this.failures === 1 || this.failures % 20 === 0) {
          this.logger.warn({ msg: 'outbox relay cannot publish; rows stay in the outbox', error: String(error) });
        }
      }
      if (moved === BATCH || (this.woken && this.failures === 0)) continue;
      const pause =
        this.failures > 0
          ? Math.min(MAX_FAILURE_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 6))
          : this.config.delivery.relayIntervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        this.sleeping = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.sleeping = undefined;
    }
  }

  /** Rows committed: relay now, or right after the pass under way. Ignored while publishing fails. */
  private wake(): void {
    if (this.failures > 0) return;
    this.woken = true;
    this.sleeping?.();
  }

  /** Commits of processes without a relay are announced on Redis; polling remains the safety net. */
  private async subscribe(): Promise<void> {
    const subscriber = this.connection.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // reconnects by itself; polling covers the gap
    subscriber.on('message', () => this.wake());
    await subscriber.subscribe(outboxCommittedChannel(this.config.queuePrefix)).catch(() => undefined);
  }
}
