import type { FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppConfig, RateLimit } from '../../config/config.js';
import { ProblemException } from '../errors/problem.js';
import {
  FAST_LEASE_MS,
  LEASE_TTL_MS,
  REDIS_DEADLINE_MS,
  RateLimiter,
  SLOW_LEASE_MS,
  TAKE_TOKENS_COMMAND,
  maxLease,
} from './rate-limiter.js';

/**
 * The lease logic against a stand-in for the Lua script: the same token bucket in memory, on the
 * (fake) clock. Only the script call is replaced; everything above it is the real RateLimiter.
 */
class ScriptStandIn {
  readonly calls: Array<{ key: string; want: number }> = [];
  /** Tokens handed out, per key. */
  readonly granted = new Map<string, number>();
  /** While set, calls wait until `release()`; 'never' leaves them unanswered. */
  hold: 'no' | 'yes' | 'never' = 'no';
  failWith?: Error;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private held: Array<() => void> = [];

  readonly redis = {
    defineCommand: (name: string) => {
      expect(name).toBe(TAKE_TOKENS_COMMAND);
    },
    [TAKE_TOKENS_COMMAND]: (key: string, burst: number, perSecond: number, want: number) => {
      this.calls.push({ key, want });
      if (this.failWith) return Promise.reject(this.failWith);
      const answer = () => this.take(key, burst, perSecond, want);
      if (this.hold === 'no') return Promise.resolve(answer());
      return new Promise<[number, number]>((resolve) => {
        if (this.hold === 'yes') this.held.push(() => resolve(answer()));
      });
    },
  } as unknown as Redis;

  release(): void {
    const held = this.held;
    this.held = [];
    for (const answer of held) answer();
  }

  private take(key: string, burst: number, perSecond: number, want: number): [number, number] {
    const now = Date.now();
    const perMs = perSecond / 1000;
    const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
    let tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * perMs);
    let granted = 0;
    if (tokens >= 1) {
      granted = Math.min(want, Math.floor(tokens));
      tokens -= granted;
    }
    this.buckets.set(key, { tokens, at: now });
    this.granted.set(key, (this.granted.get(key) ?? 0) + granted);
    return [granted, granted < want ? Math.ceil((1 - tokens) / perMs) : 0];
  }
}

function limiterFor(script: ScriptStandIn, partner: RateLimit): RateLimiter {
  const config = {
    queuePrefix: 'test',
    rateLimits: { partner, operator: { burst: 3, perSecond: 1 } },
  } as unknown as AppConfig;
  return new RateLimiter(config, script.redis);
}

function fakeReply(): FastifyReply & { headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  const reply = {
    headers,
    header(name: string, value: string) {
      headers[name] = value;
      return reply;
    },
  };
  return reply as unknown as FastifyReply & { headers: Record<string, string> };
}

/** Runs one rate-limit check: 'ok', or the Retry-After (seconds) of the 429. */
async function check(limiter: RateLimiter, id = 'device-oem'): Promise<'ok' | number> {
  const reply = fakeReply();
  try {
    await limiter.enforce('partner', id, reply);
    return 'ok';
  } catch (error) {
    expect(error).toBeInstanceOf(ProblemException);
    expect((error as ProblemException).problemType).toBe('too-many-requests');
    const retryAfter = Number(reply.headers['retry-after']);
    expect((error as ProblemException).extensions.retryAfterSeconds).toBe(retryAfter);
    return retryAfter;
  }
}

describe('RateLimiter token leases', () => {
  let script: ScriptStandIn;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: new Date('2026-01-01T00:00:00Z') });
    script = new ScriptStandIn();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('caps a lease at 2 % of the refill per second and 5 % of the burst, at least 1', () => {
    expect(maxLease({ burst: 3, perSecond: 1 })).toBe(1);
    expect(maxLease({ burst: 300, perSecond: 100 })).toBe(2);
    expect(maxLease({ burst: 2_000, perSecond: 1_000 })).toBe(20);
    expect(maxLease({ burst: 100, perSecond: 1_000_000 })).toBe(5);
    expect(maxLease({ burst: 1_000_000, perSecond: 1_000_000 })).toBe(20_000);
  });

  it('spends a small limit exactly: one token per script call, the burst, then 429 with Retry-After', async () => {
    const limiter = limiterFor(script, { burst: 3, perSecond: 1 });
    const verdicts: Array<'ok' | number> = [];
    for (let i = 0; i < 5; i++) verdicts.push(await check(limiter));
    expect(verdicts).toEqual(['ok', 'ok', 'ok', 1, 1]);
    expect(script.calls.map((call) => call.want)).toEqual([1, 1, 1, 1, 1]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await check(limiter)).toBe('ok');
    expect(await check(limiter)).toBe(1);
  });

  it('doubles the lease while leases are spent quickly, up to the cap, and then spends it locally', async () => {
    const limiter = limiterFor(script, { burst: 1_000, perSecond: 1_000_000 });
    expect(maxLease({ burst: 1_000, perSecond: 1_000_000 })).toBe(50);
    for (let i = 0; i < 500; i++) expect(await check(limiter)).toBe('ok');
    const wants = script.calls.map((call) => call.want);
    expect(wants.slice(0, 7)).toEqual([1, 2, 4, 8, 16, 32, 50]);
    expect(Math.max(...wants)).toBe(50);
    // 500 requests, about 500 / 50 + 6 script calls; every admitted request spent a granted token.
    expect(script.calls.length).toBeLessThan(20);
    expect(script.granted.get('test:rate:partner:device-oem')).toBeLessThanOrEqual(500 + 50);
  });

  it('keeps the lease size while leases last between the fast and the slow pace, halves it when slower', async () => {
    const limiter = limiterFor(script, { burst: 2_000, perSecond: 1_000 });
    for (let i = 0; i < 40; i++) expect(await check(limiter)).toBe('ok');
    expect(script.calls.at(-1)!.want).toBe(20);
    const before = script.calls.length;
    // 20 tokens over (FAST, SLOW): the next lease is the same size.
    const pace = (FAST_LEASE_MS + SLOW_LEASE_MS) / 2 / 20;
    for (let i = 0; i < 40; i++) {
      await vi.advanceTimersByTimeAsync(pace);
      expect(await check(limiter)).toBe('ok');
    }
    expect(script.calls.slice(before).map((call) => call.want)).toEqual([20, 20]);
    // Slower than SLOW_LEASE_MS per lease (but within LEASE_TTL_MS): it halves.
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync((SLOW_LEASE_MS + 300) / 20);
      expect(await check(limiter)).toBe('ok');
    }
    expect(script.calls.at(-1)!.want).toBe(10);
  });

  it('drops a lease after LEASE_TTL_MS: an idle replica does not spend old tokens, and the next lease is smaller', async () => {
    const limiter = limiterFor(script, { burst: 2_000, perSecond: 1_000 });
    for (let i = 0; i < 40; i++) expect(await check(limiter)).toBe('ok');
    const calls = script.calls.length;
    await vi.advanceTimersByTimeAsync(LEASE_TTL_MS - 1);
    expect(await check(limiter)).toBe('ok');
    expect(script.calls.length).toBe(calls); // still within the lease
    await vi.advanceTimersByTimeAsync(2);
    expect(await check(limiter)).toBe('ok');
    expect(script.calls.length).toBe(calls + 1);
    expect(script.calls.at(-1)!.want).toBe(10);
  });

  it('has requests that find no token share one in-flight script call, asking for as many tokens as are waiting', async () => {
    const limiter = limiterFor(script, { burst: 3, perSecond: 1 });
    script.hold = 'yes';
    const verdicts = Array.from({ length: 5 }, () => check(limiter));
    await vi.advanceTimersByTimeAsync(0);
    expect(script.calls).toEqual([{ key: 'test:rate:partner:device-oem', want: 1 }]);
    // More requests arrive while the call is in flight; they wait for it, not call again.
    const late = Array.from({ length: 2 }, () => check(limiter));
    await vi.advanceTimersByTimeAsync(0);
    expect(script.calls.length).toBe(1);
    script.release(); // grants 1: the first request; the 6 others ask again in one call
    await vi.advanceTimersByTimeAsync(0);
    expect(script.calls.map((call) => call.want)).toEqual([1, 6]);
    script.release(); // grants 2 of 6: the bucket is dry, the other 4 are refused
    expect(await Promise.all([...verdicts, ...late])).toEqual(['ok', 'ok', 'ok', 1, 1, 1, 1]);
    expect(script.granted.get('test:rate:partner:device-oem')).toBe(3);
  });

  it('serves waiting requests in arrival order from one answer and keeps the rest as the lease', async () => {
    const limiter = limiterFor(script, { burst: 2_000, perSecond: 1_000 });
    for (let i = 0; i < 40; i++) expect(await check(limiter)).toBe('ok');
    await vi.advanceTimersByTimeAsync(LEASE_TTL_MS); // lease dropped; next size 10
    script.hold = 'yes';
    const waiting = Array.from({ length: 4 }, () => check(limiter));
    await vi.advanceTimersByTimeAsync(0);
    const calls = script.calls.length;
    expect(script.calls.at(-1)!.want).toBe(10);
    script.release();
    expect(await Promise.all(waiting)).toEqual(['ok', 'ok', 'ok', 'ok']);
    // 6 tokens left in the lease: spent without a call.
    for (let i = 0; i < 6; i++) expect(await check(limiter)).toBe('ok');
    expect(script.calls.length).toBe(calls);
  });

  it('lets requests through when the script call fails or misses the deadline, and logs it once a minute', async () => {
    const limiter = limiterFor(script, { burst: 3, perSecond: 1 });
    const warn = vi.spyOn((limiter as unknown as { logger: { warn: () => void } }).logger, 'warn');
    warn.mockImplementation(() => undefined);
    script.failWith = new Error('Connection is closed.');
    for (let i = 0; i < 5; i++) expect(await check(limiter)).toBe('ok');
    expect(warn).toHaveBeenCalledTimes(1);

    script.failWith = undefined;
    script.hold = 'never';
    const started = Date.now();
    const verdicts = Array.from({ length: 3 }, () => check(limiter));
    await vi.advanceTimersByTimeAsync(REDIS_DEADLINE_MS);
    expect(await Promise.all(verdicts)).toEqual(['ok', 'ok', 'ok']);
    expect(Date.now() - started).toBe(REDIS_DEADLINE_MS);
    expect(warn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(60_000);
    const again = check(limiter);
    await vi.advanceTimersByTimeAsync(REDIS_DEADLINE_MS);
    expect(await again).toBe('ok');
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it('keeps separate buckets per caller and makes no call when the limit is off or there is no Redis', async () => {
    const limiter = limiterFor(script, { burst: 3, perSecond: 1 });
    for (let i = 0; i < 3; i++) expect(await check(limiter, 'device-oem')).toBe('ok');
    expect(await check(limiter, 'device-oem')).toBe(1);
    expect(await check(limiter, 'other-oem')).toBe('ok');

    const off = limiterFor(script, { burst: 0, perSecond: 1 });
    const calls = script.calls.length;
    for (let i = 0; i < 10; i++) expect(await check(off)).toBe('ok');
    const withoutRedis = new RateLimiter({
      queuePrefix: 'test',
      rateLimits: { partner: { burst: 1, perSecond: 1 }, operator: { burst: 1, perSecond: 1 } },
    } as unknown as AppConfig);
    for (let i = 0; i < 10; i++) expect(await check(withoutRedis)).toBe('ok');
    expect(script.calls.length).toBe(calls);
  });
});
