import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parsePartnerAllowList, type PkiMaterial } from './config.js';

const pki = {} as PkiMaterial;
const load = (env: Record<string, string>) => loadConfig(env, { pki, defaultPartners: [] });

describe('loadConfig', () => {
  it('serves local development with defaults', () => {
    const config = load({});
    expect(config.databaseUrl).toBe('postgres://postgres@localhost:5432/digital_key');
    expect(config.redisUrl).toBe('redis://localhost:6379');
    expect(config.api.port).toBe(8443);
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.bodyLimitBytes).toBe(65_536);
    expect(config.rateLimits).toEqual({
      partner: { burst: 2_000, perSecond: 1_000 },
      operator: { burst: 300, perSecond: 100 },
    });
  });

  it.each([
    [{ API_PORT: 'eighty' }, /API_PORT="eighty".*integer/],
    [{ ADMIN_PORT: '70000' }, /ADMIN_PORT=70000 is out of range/],
    [{ DATABASE_URL: 'mysql://localhost/x' }, /DATABASE_URL=.*protocol mysql:/],
    [{ REDIS_URL: 'not a url' }, /REDIS_URL="not a url" is not a URL/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud".*debug, info, warn, error/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV="staging"/],
    [{ DELIVERY_BACKOFF_BASE_MS: '5000', DELIVERY_BACKOFF_MAX_MS: '100' }, /DELIVERY_BACKOFF_MAX_MS=100 is smaller/],
    [{ QUEUE_PREFIX: 'a:b' }, /QUEUE_PREFIX="a:b"/],
    [{ PARTNER_ALLOWLIST: 'apple=abcd' }, /PARTNER_ALLOWLIST entry "apple=abcd"/],
    [{ RATE_LIMIT_PARTNER_PER_SECOND: '0' }, /RATE_LIMIT_PARTNER_PER_SECOND=0 is out of range/],
    [{ RATE_LIMIT_OPERATOR_BURST: 'lots' }, /RATE_LIMIT_OPERATOR_BURST="lots".*integer/],
  ])('names the variable and what it expects: %o', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });

  it('names the missing PKI and how to create it', () => {
    expect(() => loadConfig({ PKI_DIR: '/nonexistent/pki' })).toThrow(/npm run pki:dev/);
  });

  it('parses the partner allow-list with or without colons', () => {
    const hex = 'ab'.repeat(32);
    const colons = hex.match(/../g)!.join(':').toUpperCase();
    expect(parsePartnerAllowList('X', `apple=${hex}, google=${colons}`)).toEqual([
      { name: 'apple', fingerprint: hex },
      { name: 'google', fingerprint: hex },
    ]);
  });
});
