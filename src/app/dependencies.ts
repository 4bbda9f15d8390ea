import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/config.js';
import { dataSourceOptions } from '../database/data-source.js';
import { createRedisConnection } from '../telematics/delivery-queue.js';

const CONNECT_TIMEOUT_MS = 5_000;

/** A dependency is unreachable or unfit at start-up; the message says which, where, and what to do. */
export class DependencyError extends Error {
  override readonly name = 'DependencyError';
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function connectDatabase(
  config: AppConfig,
  options: { applicationName: string; poolSize?: number; requireMigrated?: boolean },
): Promise<DataSource> {
  const dataSource = new DataSource(
    dataSourceOptions(config.databaseUrl, { applicationName: options.applicationName, poolSize: options.poolSize }),
  );
  try {
    await timeout(dataSource.initialize(), CONNECT_TIMEOUT_MS, 'PostgreSQL');
  } catch (error) {
    await dataSource.destroy().catch(() => undefined);
    throw new DependencyError(
      `PostgreSQL is not reachable at ${redact(config.databaseUrl)} (${(error as Error).message}). ` +
        'Start it (a local service, or "docker compose up -d postgres redis") or set DATABASE_URL.',
    );
  }
  if (options.requireMigrated ?? true) {
    const pending = await dataSource.showMigrations().catch(() => true);
    if (pending) {
      await dataSource.destroy();
      throw new DependencyError(
        `the database at ${redact(config.databaseUrl)} is not migrated: run "npm run migration:run" first.`,
      );
    }
  }
  return dataSource;
}

export async function connectRedis(config: AppConfig, role: 'worker' | 'producer'): Promise<Redis> {
  const redis = createRedisConnection(config.redisUrl, role);
  redis.on('error', () => undefined); // reported through health checks and the callers' retries
  try {
    await timeout(
      new Promise<void>((resolve, reject) => {
        if (redis.status === 'ready') resolve();
        redis.once('ready', () => resolve());
        redis.once('end', () => reject(new Error('connection closed')));
      }),
      CONNECT_TIMEOUT_MS,
      'Redis',
    );
    await checkEvictionPolicy(redis, config.redisUrl);
  } catch (error) {
    redis.disconnect();
    if (error instanceof DependencyError) throw error;
    throw new DependencyError(
      `Redis is not reachable at ${redact(config.redisUrl)} (${(error as Error).message}). ` +
        'Start it (a local service, or "docker compose up -d postgres redis") or set REDIS_URL.',
    );
  }
  return redis;
}

/**
 * Jobs evicted under memory pressure would be lost silently (the sweeper would find them only
 * after its grace), so an evicting `maxmemory-policy` stops the process. A managed Redis that
 * forbids CONFIG cannot be checked: the process starts and says so loudly on stderr.
 */
export async function checkEvictionPolicy(
  redis: Redis,
  url: string,
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<void> {
  let policy: string | undefined;
  try {
    policy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
  } catch (error) {
    warn(
      `WARNING: cannot read maxmemory-policy of Redis at ${redact(url)} (${(error as Error).message}); ` +
        'make sure it is "noeviction", or queued jobs may be evicted under memory pressure.',
    );
    return;
  }
  if (policy && policy !== 'noeviction') {
    throw new DependencyError(
      `Redis at ${redact(url)} has maxmemory-policy=${policy}: queued jobs could be evicted. ` +
        'Set "maxmemory-policy noeviction".',
    );
  }
}
