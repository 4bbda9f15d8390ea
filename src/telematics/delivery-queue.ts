import { randomInt } from 'node:crypto';
import { DelayedError, Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { AppMetrics } from '../metrics/metrics.js';
import {
  DELIVERY_JOB_ATTEMPTS,
  BACKOFF_TYPE,
  DELIVERY_JOB_RETENTION,
  QUEUE_NAMES,
  type DeliveryJobData,
  type QueueKey,
  DELIVERY_WORKER_LOCK,
  deliveryBackoffMs,
  type BackoffSettings,
} from './delivery-policy.js';

export type DeliveryQueue = Queue<DeliveryJobData, void, string>;

/**
 * A Redis connection for BullMQ. `maxRetriesPerRequest: null` lets blocking worker commands
 * wait through a Redis restart instead of failing; producers fail fast (`enableOfflineQueue`
 * off) so the relay notices an outage and backs off, leaving rows in the outbox.
 */
export function createRedisConnection(url: string, role: 'worker' | 'producer'): Redis {
  const options: RedisOptions = {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    lazyConnect: false,
  };
  return new Redis(url, options);
}

export type DeliveryQueues = Record<QueueKey, DeliveryQueue>;

export function createDeliveryQueue(connection: ConnectionOptions, prefix: string, name: QueueKey): DeliveryQueue {
  const queue = new Queue<DeliveryJobData, void, string>(QUEUE_NAMES[name], {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: DELIVERY_JOB_ATTEMPTS,
      backoff: { type: BACKOFF_TYPE },
      ...DELIVERY_JOB_RETENTION,
    },
  });
  // Without a listener BullMQ prints every connection error with its stack while Redis is down.
  // The callers (relay, sweeper, health) see each failure on their own calls and report it once.
  queue.on('error', () => undefined);
  return queue;
}

export function createDeliveryQueues(connection: ConnectionOptions, prefix: string): DeliveryQueues {
  return {
    vehicleCommands: createDeliveryQueue(connection, prefix, 'vehicleCommands'),
    partnerNotifications: createDeliveryQueue(connection, prefix, 'partnerNotifications'),
  };
}

export async function closeDeliveryQueues(queues: DeliveryQueues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((queue) => queue.close()));
}

export type DeliveryWorker = Worker<DeliveryJobData, void, string>;

type DeliveryProcessor = (job: Job<DeliveryJobData, void, string>, token?: string) => Promise<void>;

/**
 * `process`, reporting to `metrics` how long each job waited in the queue `name` before its first
 * start. Later starts (a retry, a job deferred while its target is in backoff) and jobs queued
 * with a delay waited on purpose and are left out.
 */
export function reportingQueueWait(
  name: QueueKey,
  process: DeliveryProcessor,
  metrics?: AppMetrics,
): DeliveryProcessor {
  if (!metrics) return process;
  const labels = { queue: QUEUE_NAMES[name] };
  return (job, token) => {
    if (job.attemptsStarted <= 1 && !job.opts.delay) {
      metrics.queueWait.observe(labels, Math.max(0, Date.now() - job.timestamp) / 1000);
    }
    return process(job, token);
  };
}

/** A worker on one delivery queue, with the shared lock settings and capped backoff. */
export function createDeliveryWorker(
  name: QueueKey,
  process: DeliveryProcessor,
  options: {
    connection: ConnectionOptions;
    prefix: string;
    concurrency: number;
    backoff: BackoffSettings;
    metrics?: AppMetrics;
  },
): DeliveryWorker {
  const processor = reportingQueueWait(name, process, options.metrics);
  return new Worker<DeliveryJobData, void, string>(QUEUE_NAMES[name], processor, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
    ...DELIVERY_WORKER_LOCK,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string) =>
        type === BACKOFF_TYPE ? deliveryBackoffMs(attemptsMade, options.backoff) : 1_000,
    },
  });
}

/** Spread of the wake-ups of jobs deferred to one due time, so that they do not all wake at once. */
const DEFER_SPREAD_MS = 250;

/**
 * Puts a job back to sleep until `due` (plus a little spread) without spending one of its
 * attempts: for jobs whose target is in backoff after another job's failed attempt.
 */
export async function deferJob(job: Job<DeliveryJobData, void, string>, token: string, due: Date): Promise<never> {
  await job.moveToDelayed(due.getTime() + randomInt(DEFER_SPREAD_MS), token);
  throw new DelayedError();
}

/** True when the oldest open item failed its last attempt and is not due again yet. */
export function inBackoff(oldest: { lastError: string | null; nextAttemptAt: Date } | undefined): boolean {
  return oldest !== undefined && oldest.lastError !== null && oldest.nextAttemptAt.getTime() > Date.now();
}
