import { randomInt } from 'node:crypto';

/**
 * Queue names. The braces are a Redis Cluster hash tag: every key of a queue hashes to one slot,
 * so the same code runs on a managed Redis cluster.
 */
export const QUEUE_NAMES = {
  vehicleCommands: '{vehicle-commands}',
  partnerNotifications: '{partner-notifications}',
} as const;
export type QueueKey = keyof typeof QUEUE_NAMES;

export const JOB_NAMES = {
  deliverVehicleCommand: 'deliver-vehicle-command',
  deliverPartnerNotification: 'deliver-partner-notification',
} as const;

/** Which queue and job each outbox topic becomes. */
export const OUTBOX_ROUTES = {
  'vehicle-command': { queue: 'vehicleCommands', job: JOB_NAMES.deliverVehicleCommand },
  'partner-notification': { queue: 'partnerNotifications', job: JOB_NAMES.deliverPartnerNotification },
} as const satisfies Record<string, { queue: QueueKey; job: string }>;

/** Data of a delivery job: identifiers only (BullMQ stores job data in clear text). */
export interface DeliveryJobData {
  /** The delivery (vehicle command) or partner notification to deliver. */
  deliveryId: string;
  correlationId?: string | null;
}

/** Tries per job before BullMQ gives up on it; the sweeper re-enqueues what is still pending. */
export const DELIVERY_JOB_ATTEMPTS = 10;
export const BACKOFF_TYPE = 'capped-exponential-jitter';

/** Completed jobs are kept an hour (dashboard), failed ones a day; the database keeps the truth. */
export const DELIVERY_JOB_RETENTION = {
  removeOnComplete: { age: 3_600, count: 10_000 },
  removeOnFail: { age: 86_400, count: 10_000 },
} as const;

/**
 * Worker lock settings: a killed worker's job is taken over within lockDuration + stalledInterval
 * (4.5 s), so a revocation in flight in a dead worker still reaches its car within seconds. A job
 * is moved back to wait by the first stalled check that finds it both marked by an earlier check
 * and without its lock, so the check must run at least twice per lock lifetime: with
 * stalledInterval = lockDuration a takeover could take two full intervals after a restart. The
 * lock is renewed every lockDuration / 2 (1.5 s); a renewal later than that (an event loop blocked
 * for seconds) lets another worker run the job again, which the ledger and the car absorb.
 */
export const DELIVERY_WORKER_LOCK = { lockDuration: 3_000, stalledInterval: 1_500, maxStalledCount: 100 } as const;

/** Retention of published outbox rows and settled idempotency records. */
export const OUTBOX_RETENTION_MS = 7 * 86_400_000;
export const IDEMPOTENCY_RETENTION_MS = 86_400_000;

export interface BackoffSettings {
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/**
 * Capped exponential backoff with "equal jitter": half the delay fixed, half random, so a fleet
 * of cars coming back online does not retry in lockstep.
 */
export function deliveryBackoffMs(
  attempt: number,
  settings: BackoffSettings,
  random: (min: number, max: number) => number = (min, max) => randomInt(min, max),
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** exponent);
  const half = Math.floor(ceiling / 2);
  return half + (half > 0 ? random(0, half + 1) : 0);
}
