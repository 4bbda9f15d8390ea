import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import { APP_CONFIG } from '../../config/config.tokens.js';
import type { AppConfig, RateLimit } from '../../config/config.js';
import { PRODUCER_REDIS } from '../../telematics/telematics.tokens.js';
import { ProblemException } from '../errors/problem.js';

/** Who a bucket belongs to: a partner (mTLS identity) or an operator token's subject. */
export type RateLimitedCaller = 'partner' | 'operator';

/**
 * Token bucket in one Redis hash, so every api replica draws from the same bucket. The clock is
 * Redis's own (TIME), so replicas with skewed clocks agree. Takes up to ARGV[3] tokens at once
 * (a lease, see `RateLimiter`) and returns `{granted, waitMs}`: `waitMs` is set when fewer than
 * asked were granted, and is the time until the bucket holds one whole token again.
 */
const TAKE_TOKENS_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local burst = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2]) / 1000
local want = math.max(1, math.floor(tonumber(ARGV[3])))
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * perMs)
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
local wait = 0
if granted < want then
  wait = math.ceil((1 - tokens) / perMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / perMs) + 1000)
return { granted, wait }
`;

/** The Redis command the script is registered as (see `RateLimiter`'s constructor). */
export const TAKE_TOKENS_COMMAND = 'dksTakeTokens';

/** A rate-limit check that takes longer than this lets the request through (see `refill`). */
export const REDIS_DEADLINE_MS = 250;
/** Leased tokens not spent within this time are dropped, so an idle replica does not hoard them. */
export const LEASE_TTL_MS = 1_000;
/** A lease spent faster than this was too small: the next one is twice as large (up to the cap). */
export const FAST_LEASE_MS = 100;
/** A lease that took longer than this to spend was too large: the next one is half as large. */
export const SLOW_LEASE_MS = LEASE_TTL_MS / 2;
const FAILURE_LOG_INTERVAL_MS = 60_000;
const SWEEP_INTERVAL_MS = 60_000;

/** The script call: `want` tokens asked for, `[granted, waitMs]` answered. */
export type TakeTokens = (key: string, burst: number, perSecond: number, want: number) => Promise<[number, number]>;

/**
 * The largest lease of a bucket: at most 2 % of a second's refill and 5 % of the burst, so the
 * tokens a replica holds (or drops when a lease expires) stay small next to the limit, and a
 * small limit (below 50/s or a burst below 40) is spent one token per script call, exactly.
 */
export function maxLease(limit: RateLimit): number {
  return Math.max(1, Math.min(Math.floor(limit.perSecond / 50), Math.floor(limit.burst / 20)));
}

/** `undefined`: the request may go on; a number: milliseconds until the bucket has a token again. */
type Verdict = number | undefined;

/** What this replica knows of one bucket: the tokens it leased, and the requests waiting for some. */
interface Lease {
  /** The bucket's Redis key. */
  key: string;
  /** Leased tokens not spent yet; spendable until `expiresAt` (local clock). */
  tokens: number;
  expiresAt: number;
  /** When the last script call answered: the start of the current lease. */
  grantedAt: number;
  /** How many tokens the next script call asks for (grows and shrinks with the pace of requests). */
  size: number;
  refilling: boolean;
  /** Requests that found no leased token, in arrival order; all of them share one script call. */
  waiters: Array<(verdict: Verdict) => void>;
}

/**
 * Per-caller request budget on the mTLS and admin listeners. Exhausted → 429 problem+json with
 * `Retry-After` (whole seconds). Redis is transport, not the source of truth: when it does not
 * answer in time the request goes through, so a Redis outage never takes the API down with it.
 *
 * The bucket lives in Redis, shared by every replica; a replica takes tokens from it in leases:
 * one script call takes up to `size` tokens, which this replica then spends locally, one per
 * request, without a round trip. Requests that arrive while a call is in flight wait for that
 * call (one in flight per bucket) and are served from its answer in arrival order. A lease is
 * spendable for `LEASE_TTL_MS`; tokens left after that are dropped, not kept for later. The lease
 * size starts at 1, doubles while leases are spent within `FAST_LEASE_MS`, halves when one takes
 * longer than `SLOW_LEASE_MS` or expires unspent, falls back to 1 when the bucket runs dry, and
 * never exceeds `maxLease`. Admissions therefore never exceed what the shared bucket handed out:
 * the burst plus what was refilled, whichever replica serves the request.
 */
@Injectable()
export class RateLimiter {
  private readonly logger = new Logger('RateLimiter');
  private readonly takeTokens?: TakeTokens;
  /** Per caller kind, by caller id. */
  private readonly leases: Record<RateLimitedCaller, Map<string, Lease>> = { partner: new Map(), operator: new Map() };
  private lastFailureLog = 0;
  private lastSweep = Date.now();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(PRODUCER_REDIS) redis?: Redis,
  ) {
    if (redis) {
      redis.defineCommand(TAKE_TOKENS_COMMAND, { numberOfKeys: 1, lua: TAKE_TOKENS_SCRIPT });
      const command = (redis as unknown as Record<typeof TAKE_TOKENS_COMMAND, TakeTokens>)[TAKE_TOKENS_COMMAND];
      this.takeTokens = command.bind(redis);
    }
  }

  /**
   * Spends one token of `caller`'s bucket, or throws 429 with `Retry-After` set on `reply`.
   * Returns nothing (no promise) when a leased token was at hand.
   */
  enforce(caller: RateLimitedCaller, id: string, reply: FastifyReply): void | Promise<void> {
    const limit = this.config.rateLimits[caller];
    if (!this.takeTokens || limit.burst === 0) return;
    const verdict = this.take(caller, id, limit);
    if (verdict === undefined) return;
    return verdict.then((waitMs) => {
      if (waitMs !== undefined) this.refuse(caller, limit, waitMs, reply);
    });
  }

  private refuse(caller: RateLimitedCaller, limit: RateLimit, waitMs: number, reply: FastifyReply): never {
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    void reply.header('retry-after', String(retryAfterSeconds));
    throw new ProblemException(
      'too-many-requests',
      `the ${caller} request budget (${limit.burst} burst, ${limit.perSecond}/s) is spent; retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }

  /** `undefined` when a leased token was spent; otherwise the verdict of the next script call. */
  private take(caller: RateLimitedCaller, id: string, limit: RateLimit): Promise<Verdict> | undefined {
    const now = Date.now();
    let lease = this.leases[caller].get(id);
    if (!lease) {
      lease = {
        key: `${this.config.queuePrefix}:rate:${caller}:${id}`,
        tokens: 0,
        expiresAt: 0,
        grantedAt: 0,
        size: 1,
        refilling: false,
        waiters: [],
      };
      this.leases[caller].set(id, lease);
    }
    if (lease.tokens > 0) {
      // A clock that went back also ends the lease rather than stretching it.
      if (now < lease.expiresAt && now >= lease.grantedAt) {
        lease.tokens--;
        return undefined;
      }
      // Expired unspent: this caller is slower than the lease assumed.
      lease.tokens = 0;
      lease.size = Math.max(1, lease.size >> 1);
      lease.grantedAt = 0;
    }
    return new Promise<Verdict>((resolve) => {
      lease.waiters.push(resolve);
      if (!lease.refilling) void this.refill(lease, limit);
    });
  }

  /** One script call for every waiting request of the bucket; leftover tokens become the lease. */
  private async refill(lease: Lease, limit: RateLimit): Promise<void> {
    lease.refilling = true;
    const started = Date.now();
    this.sweep(started);
    const cap = maxLease(limit);
    if (lease.grantedAt > 0) {
      // The previous lease was spent (an expired one resets grantedAt): was it the right size?
      const lasted = started - lease.grantedAt;
      if (lasted < FAST_LEASE_MS) lease.size *= 2;
      else if (lasted > SLOW_LEASE_MS) lease.size >>= 1;
    }
    lease.size = Math.min(cap, Math.max(1, lease.size));
    // Tokens for requests already waiting are spent at once, so asking for all of them is exact.
    const want = Math.max(lease.size, lease.waiters.length);
    let answer: [number, number] | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      answer = await Promise.race([
        this.takeTokens!(lease.key, limit.burst, limit.perSecond, want),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_DEADLINE_MS} ms`)), REDIS_DEADLINE_MS);
        }),
      ]);
    } catch (error) {
      this.logFailure(error as Error);
    } finally {
      clearTimeout(timer);
    }
    lease.refilling = false;
    const waiters = lease.waiters;
    lease.waiters = [];
    if (!answer) {
      // Redis did not answer: every waiting request goes through, nothing is leased.
      lease.tokens = 0;
      lease.grantedAt = 0;
      for (const resolve of waiters) resolve(undefined);
      return;
    }
    const [granted, waitMs] = answer.map(Number);
    const now = Date.now();
    const served = Math.min(granted, waiters.length);
    for (let i = 0; i < served; i++) waiters[i](undefined);
    lease.tokens = granted - served;
    lease.expiresAt = now + LEASE_TTL_MS;
    lease.grantedAt = granted > 0 ? now : 0;
    if (granted < want) {
      // The bucket ran dry: whoever is still waiting is refused, and leases start small again.
      lease.size = 1;
      lease.grantedAt = 0;
      for (let i = served; i < waiters.length; i++) waiters[i](Math.max(1, waitMs));
      return;
    }
    // Requests that arrived during the call and were not counted in `want` ask again.
    const late = waiters.slice(served);
    if (late.length > 0) {
      lease.waiters = late.concat(lease.waiters);
      void this.refill(lease, limit);
    }
  }

  private logFailure(error: Error): void {
    const now = Date.now();
    if (now - this.lastFailureLog > FAILURE_LOG_INTERVAL_MS) {
      this.lastFailureLog = now;
      this.logger.warn({ msg: 'rate limit not enforced: Redis unavailable', error: error.message });
    }
  }

  /** Forgets the buckets of callers that went quiet, so the map does not grow with every subject seen. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const leases of Object.values(this.leases)) {
      for (const [id, lease] of leases) {
        if (!lease.refilling && lease.waiters.length === 0 && lease.expiresAt < now) leases.delete(id);
      }
    }
  }
}
