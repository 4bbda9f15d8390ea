import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { OUTBOX_CHANNEL } from './command-outbox.service.js';
import { OUTBOX_ROUTES } from './delivery-policy.js';
import { DELIVERY_QUEUES } from './telematics.tokens.js';
import type { DeliveryQueues } from './delivery-queue.js';
import type { OutboxTopic } from './outbox-message.entity.js';

const BATCH = 200;
const MAX_FAILURE_BACKOFF_MS = 5_000;

/**
 * Moves outbox rows to BullMQ (job id = outbox id, so a row published twice is one job) and
 * marks them published in the same transaction. If Redis is down the transaction rolls back,
 * the rows stay, and the relay backs off: nothing is lost.
 */
@Injectable()
export class OutboxRelayService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OutboxRelayService.name);
  private running = false;
  private wake?: () => void;
  private listener?: Client;
  private loop?: Promise<void>;
  private failures = 0;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(DELIVERY_QUEUES) private readonly queues: DeliveryQueues,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.running = true;
    void this.listen();
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.listener?.end().catch(() => undefined);
  }

  /** Publishes one batch; returns how many rows it moved. */
  async relayOnce(): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      // Claim and mark in one statement; if Redis refuses the jobs, the rollback unmarks them.
      const [rows] = await manager.query<
        [Array<{ id: string; topic: OutboxTopic; deliveryId: string; correlationId: string | null; at: Date }>, number]
      >(
        `UPDATE outbox SET published_at = now()
          WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id, topic, delivery_id AS "deliveryId", correlation_id AS "correlationId", created_at AS at`,
        [BATCH],
      );
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
      for (const row of rows) {
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
      if (moved === BATCH) continue;
      const pause =
        this.failures > 0
          ? Math.min(MAX_FAILURE_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 6))
          : this.config.delivery.relayIntervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** LISTEN for commits that wrote outbox rows; polling remains the safety net. */
  private async listen(): Promise<void> {
    while (this.running) {
      const client = new Client({ connectionString: this.config.databaseUrl, connectionTimeoutMillis: 5_000 });
      try {
        await client.connect();
        client.on('notification', () => {
          if (this.failures === 0) this.wake?.();
        });
        await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
        this.listener = client;
        await new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
      } catch {
        // PostgreSQL unreachable: polling continues; try to listen again shortly.
      }
      await client.end().catch(() => undefined);
      if (this.running) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
}
