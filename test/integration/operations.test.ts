import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRequest, startTestSystem, type TestSystem } from '../support/harness.js';

describe('operations endpoints on the admin listener', () => {
  let system: TestSystem;

  beforeAll(async () => {
    system = await startTestSystem();
  });
  afterAll(() => system?.stop());

  it('reports PostgreSQL and Redis health', async () => {
    const res = await adminRequest(system, 'GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', checks: { database: 'up', redis: 'up' } });
  });

  it('serves Prometheus metrics with request and delivery series', async () => {
    await adminRequest(system, 'GET', '/health');
    const res = await adminRequest(system, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const health = 'listener="admin",method="GET",route="/health",status="200"';
    const series = (name: string) => new RegExp(`^${name}\\{${health}\\} (\\d+)$`, 'm').exec(res.text)?.[1];
    expect(Number(series('dks_http_requests_total'))).toBeGreaterThanOrEqual(1);
    // The request counter and the duration histogram's count are one series: the two agree.
    expect(series('dks_http_requests_total')).toBe(series('dks_http_request_duration_seconds_count'));
    expect(res.text).toContain('dks_deliveries{status="pending"} 0');
    expect(res.text).toContain('dks_outbox_unpublished 0');
    expect(res.text).toContain('dks_process_resident_memory_bytes');
  });

  it('serves the OpenAPI console and the same document that is committed', async () => {
    const page = await adminRequest(system, 'GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.text).toContain('digital-key-server console');
    const served = await adminRequest<Record<string, unknown>>(system, 'GET', '/docs/openapi.json');
    expect(served.status).toBe(200);
    const committed = JSON.parse(readFileSync('openapi/openapi.json', 'utf8')) as Record<string, unknown>;
    expect(served.body.paths).toEqual(committed.paths);
  });

  it('keeps the queue dashboard behind an operator token and a cookie scoped to it', async () => {
    expect((await adminRequest(system, 'GET', '/queues')).status).toBe(401);
    const auditor = await system.operatorToken(['audit:read']);
    expect((await adminRequest(system, 'GET', `/queues?token=${auditor}`)).status).toBe(403);
    const reader = await system.operatorToken(['keys:read']);
    const opened = await adminRequest(system, 'GET', `/queues?token=${reader}`);
    expect(opened.status).toBe(200);
    const cookie = String(opened.headers['set-cookie']);
    expect(cookie).toMatch(/dks_operator=.*HttpOnly.*SameSite=Strict/);
    const api = await adminRequest<{ queues: Array<{ name: string; readOnlyMode: boolean }> }>(
      system,
      'GET',
      '/queues/api/queues',
      { headers: { cookie: cookie.split(';')[0] } },
    );
    expect(api.status).toBe(200);
    expect(api.body.queues.map((q) => q.name).sort()).toEqual(['{partner-notifications}', '{vehicle-commands}']);
    expect(api.body.queues.every((q) => q.readOnlyMode)).toBe(true);
  });

  it('answers unknown routes with problem+json 404 and echoes a request id', async () => {
    const res = await adminRequest(system, 'GET', '/nope', { headers: { 'x-request-id': 'trace-123' } });
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['x-request-id']).toBe('trace-123');
  });
});
