import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { AppConfig } from '../config/config.js';
import { closeDeliveryQueues, createDeliveryQueues } from '../telematics/delivery-queue.js';
import { DependencyError, connectDatabase, connectRedis } from './dependencies.js';
import { AppMetrics } from '../metrics/metrics.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from './server.js';
import { WorkerModule } from './worker.module.js';

export interface WorkerProcess {
  app: INestApplicationContext;
  metricsPort: number;
  close(): Promise<void>;
}

/** A bare HTTP listener for Prometheus: the worker has no other. */
async function serveMetrics(metrics: AppMetrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
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
    const metrics = new AppMetrics(dataSource);
    const metricsServer = await serveMetrics(metrics, config.workerMetrics.host, config.workerMetrics.port).catch(
      (error: Error) => {
        throw new DependencyError(
          `the worker metrics port ${config.workerMetrics.host}:${config.workerMetrics.port} is not available (${error.message}); set WORKER_METRICS_PORT`,
        );
      },
    );
    cleanup.push(() => new Promise<void>((resolve) => metricsServer.close(() => resolve())));
    const app = await NestFactory.createApplicationContext(
      WorkerModule.forRoot({ config, dataSource, redis: producer, workerRedis, queues, metrics }),
      { logger: createLogger(config), abortOnError: false },
    );
    await app.init();
    let closed = false;
    return {
      app,
      metricsPort: (metricsServer.address() as AddressInfo).port,
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
