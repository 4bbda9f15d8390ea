import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, type ApiServer } from '../../src/app/server.js';
import { issueOperatorToken } from '../../src/common/auth/operator-token.js';
import { adminRequest, mtlsRequest, startTestSystem, type HttpResult, type TestSystem } from '../support/harness.js';

const BURST = 3;

describe('rate limits: per partner and per operator token subject, shared by every api replica', () => {
  let system: TestSystem;
  let replica: ApiServer;

  beforeAll(async () => {
    system = await startTestSystem({
      env: {
        RATE_LIMIT_OPERATOR_BURST: String(BURST),
        RATE_LIMIT_OPERATOR_PER_SECOND: '1',
        RATE_LIMIT_PARTNER_BURST: String(BURST),
        RATE_LIMIT_PARTNER_PER_SECOND: '1',
      },
    });
    // A second api process on the same PostgreSQL, Redis and queue prefix.
    replica = await createApiServer(system.config);
  });
  afterAll(async () => {
    await replica?.close();
    await system?.stop();
  });

  const tokenFor = (subject: string) =>
    issueOperatorToken(system.pki.set.operatorTokenKey, { subject, scopes: ['keys:read'], ttlSeconds: 300 });
  const replicaSystem = (): TestSystem => ({
    ...system,
    adminUrl: `http://127.0.0.1:${replica.adminPort}`,
    apiUrl: `https://127.0.0.1:${replica.apiPort}`,
  });

  function expectLimited(res: HttpResult<{ type: string; status: number; retryAfterSeconds: number }>): void {
    expect(res.status).toBe(429);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.type).toBe('urn:digital-key-server:problem:too-many-requests');
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(res.body.retryAfterSeconds).toBe(retryAfter);
  }

  it('gives an operator subject its burst, then 429 with Retry-After on every replica; other subjects are untouched', async () => {
    const token = await tokenFor('alice');
    const statuses: number[] = [];
    for (let i = 0; i < BURST; i++) {
      statuses.push((await adminRequest(system, 'GET', '/v1/access-profiles', { token })).status);
    }
    expect(statuses).toEqual([200, 200, 200]);
    expectLimited(await adminRequest(system, 'GET', '/v1/access-profiles', { token }));
    // The bucket lives in Redis: the other replica refuses the same subject too.
    expectLimited(await adminRequest(replicaSystem(), 'GET', '/v1/access-profiles', { token }));
    // A fresh token of the same subject shares the bucket; another subject has its own.
    expectLimited(await adminRequest(system, 'GET', '/v1/access-profiles', { token: await tokenFor('alice') }));
    expect((await adminRequest(system, 'GET', '/v1/access-profiles', { token: await tokenFor('bob') })).status).toBe(
      200,
    );
    // Refilled at 1 per second.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await adminRequest(replicaSystem(), 'GET', '/v1/access-profiles', { token })).status).toBe(200);
  });

  it('gives a partner its burst across replicas, then 429 with Retry-After; the other partner is untouched', async () => {
    const heartbeat = (target: TestSystem, identity = system.pki.partner) =>
      mtlsRequest<{ type: string; status: number; retryAfterSeconds: number }>(target, 'GET', '/partner/v1/heartbeat', {
        identity,
      });
    expect((await heartbeat(system)).status).toBe(200);
    expect((await heartbeat(replicaSystem())).status).toBe(200);
    expect((await heartbeat(system)).status).toBe(200);
    expectLimited(await heartbeat(replicaSystem()));
    expectLimited(await heartbeat(system));
    expect((await heartbeat(system, system.pki.otherPartner)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await heartbeat(system)).status).toBe(200);
  });

  it('keeps answering when Redis does not: the limit is skipped, never the request', async () => {
    replica.redis.disconnect();
    const token = await tokenFor('carol');
    const statuses: number[] = [];
    for (let i = 0; i < BURST + 2; i++) {
      statuses.push((await adminRequest(replicaSystem(), 'GET', '/v1/access-profiles', { token })).status);
    }
    expect(statuses).toEqual(Array.from({ length: BURST + 2 }, () => 200));
  });
});
