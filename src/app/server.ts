import 'reflect-metadata';
import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { OperatorTokenVerifier } from '../common/auth/operator-token.js';
import { createValidationPipe } from '../common/errors/validation.js';
import { MAX_BODY_DEPTH, nestsDeeperThan } from '../common/request/body-depth.js';
import type { AppConfig } from '../config/config.js';
import { AppMetrics } from '../metrics/metrics.js';
import { closeDeliveryQueues, createDeliveryQueues, type DeliveryQueues } from '../telematics/delivery-queue.js';
import { announceOutboxCommits } from '../telematics/outbox-wake.js';
import { AdminModule, ApiModule, type ProcessResources } from './app.modules.js';
import { connectDatabase, connectRedis } from './dependencies.js';
import { buildOpenApiDocument } from './openapi.js';
import { mountQueueDashboard } from './queue-dashboard.js';

export const PRODUCT_VERSION = '0.1.0';
const REQUEST_ID_HEADER = 'x-request-id';
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export function createLogger(config: Pick<AppConfig, 'logLevel'>): ConsoleLogger {
  const order: LogLevel[] = ['verbose', 'debug', 'log', 'warn', 'error', 'fatal'];
  const threshold = { debug: 'debug', info: 'log', warn: 'warn', error: 'error' }[config.logLevel] as LogLevel;
  return new ConsoleLogger({ json: true, logLevels: order.slice(order.indexOf(threshold)) });
}

export interface ApiServer {
  api: NestFastifyApplication;
  admin: NestFastifyApplication;
  dataSource: DataSource;
  redis: Redis;
  queues: DeliveryQueues;
  /** Actual ports (0 in the configuration picks a free one). */
  apiPort: number;
  adminPort: number;
  close(): Promise<void>;
}

function requestIdOf(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && REQUEST_ID_PATTERN.test(value) ? value : randomUUID();
}

/**
 * Request id header and request metrics, through the adapter's instrumentation hooks: the adapter
 * runs its own Fastify onRequest and onResponse hooks on every request anyway, and hooks of our own
 * in Fastify's chains cost every request more than the work they do.
 */
function instrument(adapter: FastifyAdapter, metrics: AppMetrics, listener: 'mtls' | 'admin'): void {
  adapter.setOnRequestHook((request, reply, done) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
  adapter.setOnResponseHook((request, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    metrics.http.observe(listener, request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}

/** Methods whose body Fastify never reads: their routes have no body to check. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE']);

/**
 * 400 before validation for bodies nested deeper than MAX_BODY_DEPTH (class-transformer recurses).
 * A hook of each route that can take a body, added as routes are registered (so before Nest
 * registers its own), rather than a global hook every GET would run for nothing.
 */
function refuseDeepBodies(fastify: FastifyInstance): void {
  const refuseDeep: preValidationHookHandler = (request, _reply, done) => {
    if (!nestsDeeperThan(request.body, MAX_BODY_DEPTH)) return done();
    done(Object.assign(new Error(`the body nests deeper than ${MAX_BODY_DEPTH} levels`), { statusCode: 400 }));
  };
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.every((method) => BODYLESS_METHODS.has(method.toUpperCase()))) return;
    const existing = route.preValidation;
    route.preValidation = existing === undefined ? [refuseDeep] : [refuseDeep, ...[existing].flat()];
  });
}

/**
 * Builds the two listeners of the api process on one PostgreSQL pool: 8443 (mTLS; TLS rejects
 * any client certificate not chained to the Device OEM CA or the Vehicle OEM root) and 8080
 * (admin, plain HTTP, loopback by default).
 */
/**
 * The two Nest applications of the api process, not yet listening. With `preview`, nothing is
 * instantiated (no connection is made): used to export the OpenAPI document.
 */
export async function createApps(
  resources: ProcessResources,
  options: { logger: ConsoleLogger | false; preview?: boolean },
): Promise<{
  api: NestFastifyApplication;
  admin: NestFastifyApplication;
  adapters: { api: FastifyAdapter; admin: FastifyAdapter };
}> {
  const { config } = resources;
  const common = {
    bodyLimit: config.bodyLimitBytes,
    genReqId: (request: { headers: Record<string, string | string[] | undefined> }) =>
      requestIdOf(request.headers[REQUEST_ID_HEADER]),
    trustProxy: false,
    return503OnClosing: true,
  };
  const adapters = {
    api: new FastifyAdapter({
      ...common,
      https: {
        key: config.pki.serverKeyPem,
        cert: config.pki.serverCertPem,
        ca: [config.pki.deviceOemCaCertPem, config.pki.vehicleOemRootCertPem],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
    }),
    admin: new FastifyAdapter(common),
  };
  const api = await NestFactory.create<NestFastifyApplication>(ApiModule.forRoot(resources), adapters.api, {
    logger: options.logger,
    preview: options.preview,
    abortOnError: false,
  });
  const admin = await NestFactory.create<NestFastifyApplication>(AdminModule.forRoot(resources), adapters.admin, {
    logger: options.logger,
    preview: options.preview,
    abortOnError: false,
  });
  for (const app of [api, admin]) {
    app.useGlobalPipes(createValidationPipe());
    refuseDeepBodies(app.getHttpAdapter().getInstance());
  }
  return { api, admin, adapters };
}

export async function createApiServer(config: AppConfig): Promise<ApiServer> {
  const logger = createLogger(config);
  const dataSource = await connectDatabase(config, { applicationName: 'dks-api', poolSize: 20 });
  let redis: Redis | undefined;
  try {
    redis = await connectRedis(config, 'producer');
  } catch (error) {
    await dataSource.destroy();
    throw error;
  }
  const metrics = new AppMetrics(dataSource);
  const queues = createDeliveryQueues(redis, config.queuePrefix);
  // The api has no outbox relay: its commits wake the workers' relays through Redis.
  announceOutboxCommits(dataSource, redis, config.queuePrefix);
  const resources: ProcessResources = { config, dataSource, redis, metrics };
  const { api, admin, adapters } = await createApps(resources, { logger });
  instrument(adapters.api, metrics, 'mtls');
  instrument(adapters.admin, metrics, 'admin');
  const document = buildOpenApiDocument(admin, api, PRODUCT_VERSION);
  SwaggerModule.setup('docs', admin, document, {
    customSiteTitle: 'digital-key-server console',
    jsonDocumentUrl: 'docs/openapi.json',
    swaggerOptions: { persistAuthorization: true },
  });
  await mountQueueDashboard(
    admin.getHttpAdapter().getInstance(),
    Object.values(queues),
    new OperatorTokenVerifier(config.pki.operatorTokenPublicKeyPem),
  );

  await api.listen(config.api.port, config.api.host);
  await admin.listen(config.admin.port, config.admin.host);
  const portOf = (app: NestFastifyApplication) => {
    const address = app.getHttpServer().address();
    return typeof address === 'object' && address ? address.port : 0;
  };
  let closed = false;
  return {
    api,
    admin,
    dataSource,
    redis,
    queues,
    apiPort: portOf(api),
    adminPort: portOf(admin),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([api.close(), admin.close()]);
      await closeDeliveryQueues(queues);
      redis?.disconnect();
      await dataSource.destroy().catch(() => undefined);
    },
  };
}
