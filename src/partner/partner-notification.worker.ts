import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Job } from 'bullmq';
import { createDeliveryWorker, deferJob, inBackoff, type DeliveryWorker } from '../telematics/delivery-queue.js';
import type { Redis } from 'ioredis';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { Agent, request } from 'node:https';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/config.js';
import { AppMetrics } from '../metrics/metrics.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { NOTIFICATION_JWS_TYPE, type PartnerNotificationMessage } from '../protocol/telematics-messages.js';
import { JOB_NAMES, deliveryBackoffMs, type DeliveryJobData } from '../telematics/delivery-policy.js';
import { WORKER_REDIS } from '../telematics/telematics.tokens.js';
import type { PartnerNotification } from './partner-notification.entity.js';
import { signCompactJws } from '../protocol/crypto/compact-jws.js';
import { RELAXED_COMMIT, prepared, runPrepared } from '../database/prepared.js';

const CONCURRENCY = 16;

class PartnerUnreachableError extends Error {}

/**
 * `status IS NOT DISTINCT FROM 'pending'` (the column is NOT NULL, so it means `= 'pending'`) in
 * lookups by id: `status = 'pending'` would match the predicate of the partial index
 * `partner_notifications_open`, and a plan made while the table was nearly empty (a prepared
 * statement keeps its plan) could then scan every pending notification to find one by id.
 */
const PENDING = `status IS NOT DISTINCT FROM 'pending'`;

/** The open notifications of a job's key up to its version; the first claimed when it may go now. */
const OPEN_AND_CLAIM_FIRST = prepared(
  `WITH open AS (
         SELECT n.id, n.partner, n.key_identifier AS "keyIdentifier", n.key_version AS "keyVersion", n.type,
                n.payload, n.status, n.attempts, n.next_attempt_at AS "nextAttemptAt", n.last_error AS "lastError",
                n.correlation_id AS "correlationId", n.created_at AS "createdAt"
           FROM partner_notifications target
           JOIN partner_notifications n
             ON n.key_identifier = target.key_identifier AND n.key_version <= target.key_version
            AND n.status IN ('pending', 'sending')
          WHERE target.id = $1 AND target.${PENDING}),
       ${RELAXED_COMMIT},
       claimed AS (
         UPDATE partner_notifications SET status = 'sending', next_attempt_at = $2, updated_at = now()
           FROM relaxed_commit
          WHERE id = (SELECT id FROM open ORDER BY "keyVersion" LIMIT 1)
            AND ${PENDING} AND (last_error IS NULL OR next_attempt_at <= now())
      RETURNING id)
       SELECT open.*, claimed.id IS NOT NULL AS claimed
         FROM open LEFT JOIN claimed ON claimed.id = open.id
        ORDER BY open."keyVersion"`,
);

/** A claimed notification the partner took (lost in a crash, it is sent again: the event id dedupes it). */
const DELIVERED = prepared(
  `WITH ${RELAXED_COMMIT}
   UPDATE partner_notifications SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
                  last_error = NULL, updated_at = now()
     FROM relaxed_commit WHERE id = $1 AND status = 'sending'`,
);

/** Claims one notification (a lease: lost in a crash, the notification is simply claimed again). */
const CLAIM = prepared(
  `WITH ${RELAXED_COMMIT}
   UPDATE partner_notifications SET status = 'sending', next_attempt_at = $2, updated_at = now()
     FROM relaxed_commit WHERE id = $1 AND ${PENDING}
RETURNING id`,
);

/**
 * Delivers notifications to Device OEM backends over mTLS (the server's client certificate;
 * the partner's server must chain to the Device OEM CA), signed by the KTS key, in key-version
 * order per key, retried with the same capped backoff as vehicle commands. The URL comes from
 * configuration only, never from a payload.
 */
@Injectable()
export class PartnerNotificationWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(PartnerNotificationWorker.name);
  private worker?: DeliveryWorker;
  private readonly agent: Agent;
  private readonly signingKey: KeyObject;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(WORKER_REDIS) private readonly connection: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() private readonly metrics?: AppMetrics,
  ) {
    this.agent = new Agent({
      cert: config.pki.serverClientCertPem,
      key: config.pki.serverClientKeyPem,
      ca: config.pki.deviceOemCaCertPem,
      rejectUnauthorized: true,
      keepAlive: true,
    });
    this.signingKey = createPrivateKey(config.pki.ktsKeyPem);
  }

  onApplicationBootstrap(): void {
    this.worker = createDeliveryWorker('partnerNotifications', (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: this.config.queuePrefix,
      concurrency: CONCURRENCY,
      backoff: this.config.delivery,
      metrics: this.metrics,
    });
    this.worker.on('error', (error) => this.logger.warn({ msg: 'queue connection error', error: error.message }));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    this.agent.destroy();
  }

  async process(job: Job<DeliveryJobData, void, string>, token?: string): Promise<void> {
    if (job.name !== JOB_NAMES.deliverPartnerNotification) throw new Error(`no handler for job ${job.name}`);
    // The open notifications of the job's key up to its version, oldest first; none when the
    // job's own notification is no longer pending. Claimed ones too: a later notification must
    // not overtake one another worker is sending. The first is claimed in the same statement
    // when it is pending and not waiting out a backoff (the common case: one, sent at once).
    const lease = this.lease();
    const open = await runPrepared<PartnerNotification & { claimed: boolean }>(this.dataSource, OPEN_AND_CLAIM_FIRST, [
      job.data.deliveryId,
      lease,
    ]);
    if (open.length === 0) return;
    // The partner failed recently: one job per backoff period calls it, the others wait for that.
    if (!open[0].claimed && token && inBackoff(open[0])) await deferJob(job, token, open[0].nextAttemptAt);
    for (const notification of open) {
      // Claim before sending: a concurrent job for the same key stops here instead of sending
      // the same event again or overtaking it; the lease lets the sweeper recover a crash.
      if (!notification.claimed && !(await this.claim(notification))) {
        // BullMQ retries this job shortly, after the other worker has moved on.
        throw new Error(`notification ${notification.id} is being sent by another worker`);
      }
      if (!(await this.deliver(notification))) return;
    }
  }

  private lease(): Date {
    return new Date(Date.now() + this.config.delivery.requestTimeoutMs * 2);
  }

  private async claim(notification: PartnerNotification): Promise<boolean> {
    const lease = this.lease();
    const rows = await runPrepared<{ id: string }>(this.dataSource, CLAIM, [notification.id, lease]);
    return rows.length > 0;
  }

  /** Sends one claimed notification; true when later ones of the key may follow. */
  private async deliver(notification: PartnerNotification): Promise<boolean> {
    const log = {
      partner: notification.partner,
      keyId: notification.keyIdentifier,
      type: notification.type,
      eventId: notification.id,
      correlationId: notification.correlationId,
    };
    const base = this.config.partnerNotificationUrls[notification.partner];
    if (!base) {
      await this.dataSource.query(
        `UPDATE partner_notifications SET status = 'failed', last_error = $2, updated_at = now() WHERE id = $1`,
        [notification.id, `no notification URL configured for partner ${notification.partner}`],
      );
      this.logger.warn({ msg: 'no notification URL for partner; notification failed', ...log });
      return true;
    }
    const message: PartnerNotificationMessage = {
      eventId: notification.id,
      type: notification.type,
      keyId: notification.keyIdentifier,
      vehicleId: String(notification.payload.vehicleId),
      keyVersion: notification.keyVersion,
      state: String(notification.payload.state),
      occurredAt: notification.createdAt.toISOString(),
      ...(notification.payload.revocationRelay
        ? { revocationRelay: notification.payload.revocationRelay as PartnerNotificationMessage['revocationRelay'] }
        : {}),
    };
    const jws = signCompactJws(JSON.stringify(message), this.signingKey, { typ: NOTIFICATION_JWS_TYPE });
    try {
      const status = await this.post(`${base}/v1/notifications`, { notification: jws });
      if (status >= 200 && status < 300) {
        await runPrepared(this.dataSource, DELIVERED, [notification.id]);
        this.logger.log({ msg: 'partner notified', ...log });
        return true;
      }
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        await this.dataSource.query(
          `UPDATE partner_notifications SET status = 'failed', attempts = attempts + 1, last_error = $2, updated_at = now()
            WHERE id = $1 AND status = 'sending'`,
          [notification.id, `partner refused it (${status})`],
        );
        this.logger.warn({ msg: 'partner refused the notification', status, ...log });
        return true;
      }
      throw new PartnerUnreachableError(`partner answered ${status}`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const next = new Date(Date.now() + deliveryBackoffMs(notification.attempts + 1, this.config.delivery));
      await this.dataSource.query(
        `UPDATE partner_notifications SET status = 'pending', attempts = attempts + 1, last_error = $2, next_attempt_at = $3, updated_at = now()
          WHERE id = $1 AND status = 'sending'`,
        [notification.id, reason.slice(0, 1_000), next],
      );
      this.logger.warn({ msg: 'partner unreachable; will retry', reason, ...log });
      throw error instanceof Error ? error : new Error(reason);
    }
  }

  private post(url: string, body: unknown): Promise<number> {
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: this.config.delivery.requestTimeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new PartnerUnreachableError('no answer in time')));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
