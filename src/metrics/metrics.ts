import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DataSource } from 'typeorm';
import { HttpRequestMetrics } from './http-metrics.js';

/** One Prometheus registry per process, with the product's own series next to the defaults. */
export class AppMetrics {
  readonly registry = new Registry();
  /** Duration and count of every HTTP request, by listener, method, route and status. */
  readonly http: HttpRequestMetrics;
  /** Commit of a command → the car's signed ack: the revocation latency when the command is SET_STATE. */
  readonly commandAckLatency: Histogram<'command'>;
  /** Acks whose key-list digest differed from the server's list, by how the server answered. */
  readonly keyListMismatches: Counter<'answered'>;
  /** Outbox row written → its job in the queue: the first hop of every command and notification. */
  readonly relayLag: Histogram<'topic'>;
  /** Job queued → a worker starts it (first start only): the second hop. */
  readonly queueWait: Histogram<'queue'>;

  constructor(dataSource: DataSource) {
    collectDefaultMetrics({ register: this.registry, prefix: 'dks_' });
    this.http = new HttpRequestMetrics(this.registry);
    this.commandAckLatency = new Histogram({
      name: 'dks_command_ack_latency_seconds',
      help: 'Time from the commit of a command to the car acknowledging it, by command',
      labelNames: ['command'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [this.registry],
    });
    // The hops of commit → car ack, so that an operator sees which one a slow revocation waited in.
    const hop = <L extends string>(name: string, help: string, label: L) =>
      new Histogram<L>({
        name,
        help,
        labelNames: [label],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [this.registry],
      });
    this.relayLag = hop(
      'dks_outbox_relay_lag_seconds',
      "Time from an outbox row's transaction to its job being queued, by topic",
      'topic',
    );
    this.queueWait = hop(
      'dks_queue_wait_seconds',
      'Time from a job being queued to a worker starting it (first start, not retries), by queue',
      'queue',
    );
    this.keyListMismatches = new Counter({
      name: 'dks_key_list_mismatches_total',
      help: "Car acks whose key-list digest differed from the server's list, by answer (sync or flagged)",
      labelNames: ['answered'],
      registers: [this.registry],
    });
    // Delivery state is read from PostgreSQL at scrape time: the truth, whichever worker did the work.
    new Gauge({
      name: 'dks_deliveries',
      help: 'Vehicle command deliveries by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const rows = await dataSource
          .query<Array<{ status: string; n: number }>>(
            'SELECT status, count(*)::int AS n FROM deliveries GROUP BY status',
          )
          .catch(() => []);
        this.reset();
        for (const status of ['pending', 'sent', 'acked', 'failed']) {
          this.set({ status }, rows.find((row) => row.status === status)?.n ?? 0);
        }
      },
    });
    new Gauge({
      name: 'dks_outbox_unpublished',
      help: 'Outbox rows not yet handed to the queue',
      registers: [this.registry],
      async collect() {
        const rows = await dataSource
          .query<Array<{ n: number }>>('SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL')
          .catch(() => [{ n: -1 }]);
        this.set(rows[0]?.n ?? 0);
      },
    });
    new Gauge({
      name: 'dks_oldest_open_delivery_seconds',
      help: 'Age of the oldest delivery not yet acknowledged by its car',
      registers: [this.registry],
      async collect() {
        const rows = await dataSource
          .query<Array<{ age: number }>>(
            `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float AS age
               FROM deliveries WHERE status IN ('pending', 'sent')`,
          )
          .catch(() => [{ age: -1 }]);
        this.set(rows[0]?.age ?? 0);
      },
    });
  }
}
