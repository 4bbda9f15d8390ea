import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HTTP_DURATION_BUCKETS, HTTP_DURATION_NAME, HTTP_REQUESTS_NAME, HttpRequestMetrics } from './http-metrics.js';

/** The same series kept by prom-client's own Histogram and Counter, as the api kept them before. */
function promClientPeer() {
  const registry = new Registry();
  const labelNames = ['listener', 'method', 'route', 'status'] as const;
  const duration = new Histogram({
    name: HTTP_DURATION_NAME,
    help: 'HTTP request duration by listener, route and status',
    labelNames,
    buckets: [...HTTP_DURATION_BUCKETS],
    registers: [registry],
  });
  const requests = new Counter({
    name: HTTP_REQUESTS_NAME,
    help: 'HTTP requests by listener, route and status',
    labelNames,
    registers: [registry],
  });
  return {
    registry,
    observe(listener: string, method: string, route: string, status: number, seconds: number) {
      const labels = { listener, method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}

const REQUESTS: Array<[string, string, string, number, number]> = [
  ['mtls', 'GET', '/partner/v1/heartbeat', 200, 0.0004],
  ['mtls', 'GET', '/partner/v1/heartbeat', 200, 0.001], // on a bound: counted in it
  ['mtls', 'GET', '/partner/v1/heartbeat', 429, 0.0031],
  ['admin', 'POST', '/v1/vehicles', 201, 0.042],
  ['admin', 'GET', 'unmatched', 404, 0],
  ['mtls', 'GET', '/partner/v1/heartbeat', 200, 7.5], // above the last bound: only in +Inf
  ['admin', 'POST', '/v1/vehicles', 201, 2.5],
  ['admin', 'GET', '/v1/vehicles/:vin', 200, 0.26],
];

describe('HttpRequestMetrics', () => {
  it("exposes exactly the text prom-client's Histogram and Counter exposed for the same requests", async () => {
    const registry = new Registry();
    const metrics = new HttpRequestMetrics(registry);
    const peer = promClientPeer();
    for (const request of REQUESTS) {
      metrics.observe(...request);
      peer.observe(...request);
    }
    const text = await registry.metrics();
    expect(text).toBe(await peer.registry.metrics());
    expect(text).toContain(
      'dks_http_request_duration_seconds_bucket{le="0.001",listener="mtls",method="GET",route="/partner/v1/heartbeat",status="200"} 2',
    );
    expect(text).toContain(
      'dks_http_request_duration_seconds_bucket{le="+Inf",listener="mtls",method="GET",route="/partner/v1/heartbeat",status="200"} 3',
    );
    expect(text).toContain(
      'dks_http_requests_total{listener="mtls",method="GET",route="/partner/v1/heartbeat",status="200"} 3',
    );
  });

  it('starts over when the registry is reset, and keeps its names to itself', async () => {
    const registry = new Registry();
    const metrics = new HttpRequestMetrics(registry);
    metrics.observe('mtls', 'GET', '/partner/v1/heartbeat', 200, 0.002);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('route=');
    metrics.observe('mtls', 'GET', '/partner/v1/heartbeat', 200, 0.002);
    expect(await registry.metrics()).toContain(
      'dks_http_requests_total{listener="mtls",method="GET",route="/partner/v1/heartbeat",status="200"} 1',
    );
    expect(() => new Histogram({ name: HTTP_DURATION_NAME, help: 'again', registers: [registry] })).toThrow(
      /already been registered/,
    );
  });
});
