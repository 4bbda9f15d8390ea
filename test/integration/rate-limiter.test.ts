import type { FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { RateLimiter, maxLease, type TakeTokens } from '../../src/common/rate-limit/rate-limiter.js';
import { ProblemException } from '../../src/common/errors/problem.js';
import type { AppConfig, RateLimit } from '../../src/config/config.js';
import { createRedisConnection } from '../../src/telematics/delivery-queue.js';
import { REDIS_URL } from '../support/harness.js';

/**
 * The rate limiter on real Redis: each `replica` is a RateLimiter with its own connection, as two
 * api processes would have, drawing from the same bucket (same queue prefix, same caller).
 */
describe('rate limiter on Redis: leases drawn by two replicas from one bucket', () => {
  const connections: Redis[] = [];
  const prefix = `rltest${randomBytes(4).toString('hex')}`;

  afterAll(async () => {
    const [first] = connections;
    if (first) {
      const keys = await first.keys(`${prefix}:rate:*`);
      if (keys.length > 0) await first.del(...keys);
    }
    for (const connection of connections) connection.disconnect();
  });

  /** A RateLimiter on a connection of its own; `calls` counts its script calls. */
  async function replica(partner: RateLimit): Promise<{ limiter: RateLimiter; calls: () => number }> {
    const connection = createRedisConnection(REDIS_URL, 'producer');
    connections.push(connection);
    // The api's connection has no offline queue: a call before it is ready would be let through.
    await new Promise<void>((resolve, reject) => {
      connection.once('ready', resolve);
      connection.once('error', reject);
    });
    let calls = 0;
    const counting = {
      defineCommand(name: string, definition: { numberOfKeys: number; lua: string }) {
        connection.defineCommand(name, definition);
        const command = (connection as unknown as Record<string, TakeTokens>)[name].bind(connection);
        (counting as unknown as Record<string, TakeTokens>)[name] = (...args) => {
          calls++;
          return command(...args);
        };
      },
    };
    const config = {
      queuePrefix: prefix,
      rateLimits: { partner, operator: partner },
    } as unknown as AppConfig;
    return { limiter: new RateLimiter(config, counting as unknown as Redis), calls: () => calls };
  }

  const reply = { header: () => reply } as unknown as FastifyReply;

  async function check(limiter: RateLimiter, partner: string): Promise<'ok' | number> {
    try {
      await limiter.enforce('partner', partner, reply);
      return 'ok';
    } catch (error) {
      if (!(error instanceof ProblemException) || error.problemType !== 'too-many-requests') throw error;
      return error.extensions.retryAfterSeconds as number;
    }
  }

  it('spends a small limit one token at a time across both replicas, then answers 429 on both', async () => {
    const limit = { burst: 4, perSecond: 1 };
    expect(maxLease(limit)).toBe(1);
    const [a, b] = await Promise.all([replica(limit), replica(limit)]);
    const verdicts: Array<'ok' | number> = [];
    for (let i = 0; i < 4; i++) verdicts.push(await check((i % 2 === 0 ? a : b).limiter, 'small'));
    verdicts.push(await check(a.limiter, 'small'), await check(b.limiter, 'small'));
    expect(verdicts).toEqual(['ok', 'ok', 'ok', 'ok', 1, 1]);
    expect(a.calls() + b.calls()).toBe(6);
  });

  it('never admits more than the burst plus what was refilled, with leases on both replicas under concurrent load', async () => {
    const limit = { burst: 2_000, perSecond: 1_000 };
    expect(maxLease(limit)).toBe(20);
    const replicas = await Promise.all([replica(limit), replica(limit)]);
    let admitted = 0;
    let refused = 0;
    const started = performance.now();
    const deadline = started + 700;
    await Promise.all(
      replicas.flatMap(({ limiter }) =>
        Array.from({ length: 16 }, async () => {
          while (performance.now() < deadline) {
            if ((await check(limiter, 'busy')) === 'ok') admitted++;
            else refused++;
          }
        }),
      ),
    );
    const elapsedSeconds = (performance.now() - started) / 1000;
    expect(refused).toBeGreaterThan(0);
    // Redis's clock runs no longer than this process's between the first call and the last answer.
    expect(admitted).toBeLessThanOrEqual(limit.burst + Math.floor(limit.perSecond * elapsedSeconds));
    // Unspent at the end: at most one lease per replica (none expired within the second).
    expect(admitted).toBeGreaterThanOrEqual(limit.burst - replicas.length * maxLease(limit));
  });

  it('takes far fewer script calls than requests once the leases have grown', async () => {
    const limit = { burst: 1_000_000, perSecond: 1_000_000 };
    const [a, b] = await Promise.all([replica(limit), replica(limit)]);
    for (let i = 0; i < 2_000; i++) {
      expect(await check(a.limiter, 'steady')).toBe('ok');
      expect(await check(b.limiter, 'steady')).toBe('ok');
    }
    expect(a.calls()).toBeLessThan(100);
    expect(b.calls()).toBeLessThan(100);
  });
});
