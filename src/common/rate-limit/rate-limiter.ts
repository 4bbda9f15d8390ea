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
 * Redis's own (TIME), so replicas with skewed clocks agree. Returns `{allowed, waitMs}`.
 */
const TAKE_TOKEN_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local burst = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * perMs)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / perMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / perMs) + 1000)
return { allowed, wait }
`;

/** A rate-limit check that takes longer than this lets the request through (see `take`). */
const REDIS_DEADLINE_MS = 250;
const FAILURE_LOG_INTERVAL_MS = 60_000;

type TakeToken = (key: string, burst: number, perSecond: number) => Promise<[number, number]>;

/**
 * Per-caller request budget on the mTLS and admin listeners. Exhausted → 429 problem+json with
 * `Retry-After` (whole seconds). Redis is transport, not the source of truth: when it does not
 * answer in time the request goes through, so a Redis outage never takes the API down with it.
 */
@Injectable()
export class RateLimiter {
  private readonly logger = new Logger('RateLimiter');
  private readonly takeToken?: TakeToken;
  private lastFailureLog = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(PRODUCER_REDIS) redis?: Redis,
  ) {
    if (redis) {
      redis.defineCommand('dksTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN_SCRIPT });
      const command = (redis as unknown as Record<'dksTakeToken', TakeToken>).dksTakeToken.bind(redis);
      this.takeToken = command;
    }
  }

  /** Spends one token of `caller`'s bucket, or throws 429 with `Retry-After` set on `reply`. */
  async enforce(caller: RateLimitedCaller, id: string, reply: FastifyReply): Promise<void> {
    const limit = this.config.rateLimits[caller];
    if (!this.takeToken || limit.burst === 0) return;
    const waitMs = await this.take(caller, id, limit);
    if (waitMs === undefined) return;
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    void reply.header('retry-after', String(retryAfterSeconds));
    throw new ProblemException(
      'too-many-requests',
      `the ${caller} request budget (${limit.burst} burst, ${limit.perSecond}/s) is spent; retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }

  /** Milliseconds to wait when the bucket is empty; undefined when the request may go on. */
  private async take(caller: RateLimitedCaller, id: string, limit: RateLimit): Promise<number | undefined> {
    const key = `${this.config.queuePrefix}:rate:${caller}:${id}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const [allowed, waitMs] = await Promise.race([
        this.takeToken!(key, limit.burst, limit.perSecond),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_DEADLINE_MS} ms`)), REDIS_DEADLINE_MS);
        }),
      ]);
      return allowed === 1 ? undefined : waitMs;
    } catch (error) {
      const now = Date.now();
      if (now - this.lastFailureLog > FAILURE_LOG_INTERVAL_MS) {
        this.lastFailureLog = now;
        this.logger.warn({ msg: 'rate limit not enforced: Redis unavailable', error: (error as Error).message });
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
