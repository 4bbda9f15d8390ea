import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  DELIVERY_JOB_ATTEMPTS,
  BACKOFF_TYPE,
  DELIVERY_JOB_RETENTION,
  QUEUE_NAMES,
  type DeliveryJobData,
  type QueueKey,
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
  return new Queue<DeliveryJobData, void, string>(QUEUE_NAMES[name], {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: DELIVERY_JOB_ATTEMPTS,
      backoff: { type: BACKOFF_TYPE },
      ...DELIVERY_JOB_RETENTION,
    },
  });
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
