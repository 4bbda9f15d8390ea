import type { Metric, Registry } from 'prom-client';

export const HTTP_DURATION_NAME = 'dks_http_request_duration_seconds';
export const HTTP_REQUESTS_NAME = 'dks_http_requests_total';
export const HTTP_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

type HttpLabel = 'listener' | 'method' | 'route' | 'status';

/** One label set: its observations per bucket (not cumulative; above the last bound in none), sum and count. */
interface Series {
  labels: Record<HttpLabel, string>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** One exported sample, as prom-client's own metrics hand them to their registry. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** What a prom-client Registry reads of a metric: its description, its samples, and a reset. */
interface ExportedMetric {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }>;
  reset(): void;
}

/**
 * The series recorded for every HTTP request: `dks_http_request_duration_seconds` (histogram) and
 * `dks_http_requests_total` (counter) by listener, method, route and status. prom-client's own
 * `observe()` validates and hashes the label set and finds its bucket through number-keyed
 * properties on each call, the largest cost of ours on a keep-alive request; here a request costs
 * one map lookup and a few additions, and the series are rendered at scrape time in the shapes
 * prom-client gives its own histogram and counter (same names, labels, buckets and text).
 */
export class HttpRequestMetrics {
  private readonly series = new Map<string, Series>();

  constructor(registry: Registry) {
    for (const metric of [this.durationMetric(), this.requestsMetric()]) {
      registry.registerMetric(metric as unknown as Metric);
    }
  }

  observe(listener: string, method: string, route: string, status: number, seconds: number): void {
    const key = `${listener} ${method} ${status} ${route}`;
    let series = this.series.get(key);
    if (!series) {
      series = {
        labels: { listener, method, route, status: String(status) },
        buckets: new Float64Array(HTTP_DURATION_BUCKETS.length),
        sum: 0,
        count: 0,
      };
      this.series.set(key, series);
    }
    let bucket = 0;
    while (bucket < HTTP_DURATION_BUCKETS.length && seconds > HTTP_DURATION_BUCKETS[bucket]) bucket++;
    if (bucket < HTTP_DURATION_BUCKETS.length) series.buckets[bucket]++;
    series.sum += seconds;
    series.count++;
  }

  private durationMetric(): ExportedMetric {
    const name = HTTP_DURATION_NAME;
    const help = 'HTTP request duration by listener, route and status';
    return {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: () => {
        const values: Sample[] = [];
        for (const { labels, buckets, sum, count } of this.series.values()) {
          let cumulative = 0;
          HTTP_DURATION_BUCKETS.forEach((bound, index) => {
            cumulative += buckets[index];
            values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${name}_bucket` });
          });
          values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${name}_bucket` });
          values.push({ labels: { ...labels }, value: sum, metricName: `${name}_sum` });
          values.push({ labels: { ...labels }, value: count, metricName: `${name}_count` });
        }
        return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values });
      },
      reset: () => this.series.clear(),
    };
  }

  private requestsMetric(): ExportedMetric {
    const name = HTTP_REQUESTS_NAME;
    const help = 'HTTP requests by listener, route and status';
    return {
      name,
      help,
      type: 'counter',
      aggregator: 'sum',
      get: () => {
        const values = [...this.series.values()].map(({ labels, count }) => ({ labels: { ...labels }, value: count }));
        return Promise.resolve({ name, help, type: 'counter', aggregator: 'sum', values });
      },
      // One set of series behind both: resetting either resets both.
      reset: () => this.series.clear(),
    };
  }
}
