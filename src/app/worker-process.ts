import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { AppConfig } from '../config/config.js';
import { closeDeliveryQueues, createDeliveryQueues } from '../telematics/delivery-queue.js';
import { connectDatabase, connectRedis } from './dependencies.js';
import { createLogger } from './server.js';
import { WorkerModule } from './worker.module.js';

export interface WorkerProcess {
  app: INestApplicationContext;
  close(): Promise<void>;
}

/** Starts the relay, the vehicle-command worker and the sweeper on their own connections. */
export async function startWorker(config: AppConfig): Promise<WorkerProcess> {
  const dataSource = await connectDatabase(config, { applicationName: 'dks-worker', poolSize: 20 });
  const cleanup: Array<() => unknown> = [() => dataSource.destroy()];
  try {
    const producer = await connectRedis(config, 'producer');
    cleanup.push(() => producer.disconnect());
    const workerRedis = await connectRedis(config, 'worker');
    cleanup.push(() => workerRedis.disconnect());
    const queues = createDeliveryQueues(producer, config.queuePrefix);
    cleanup.push(() => closeDeliveryQueues(queues));
    const app = await NestFactory.createApplicationContext(
      WorkerModule.forRoot({ config, dataSource, redis: producer, workerRedis, queues }),
      { logger: createLogger(config), abortOnError: false },
    );
    await app.init();
    let closed = false;
    return {
      app,
      async close() {
        if (closed) return;
        closed = true;
        await app.close();
        for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined);
      },
    };
  } catch (error) {
    for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined);
    throw error;
  }
}
