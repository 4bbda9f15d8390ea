import type { Job } from 'bullmq';
import type { DataSource } from 'typeorm';
import { describe, expect, it, vi } from 'vitest';
import { AppMetrics } from '../metrics/metrics.js';
import type { DeliveryJobData } from './delivery-policy.js';
import { reportingQueueWait } from './delivery-queue.js';

type DeliveryJob = Job<DeliveryJobData, void, string>;

/** The fields of a BullMQ job the wait is read from. */
const job = (fields: { attemptsStarted: number; timestamp: number; delay?: number }) =>
  ({
    attemptsStarted: fields.attemptsStarted,
    timestamp: fields.timestamp,
    opts: fields.delay === undefined ? {} : { delay: fields.delay },
    data: { deliveryId: 'd', correlationId: null },
  }) as unknown as DeliveryJob;

async function waits(metrics: AppMetrics): Promise<{ count: number; sum: number }> {
  const { values } = await metrics.queueWait.get();
  const of = (name: string) =>
    values.find((value) => value.metricName === name && value.labels.queue === '{vehicle-commands}')?.value ?? 0;
  return { count: of('dks_queue_wait_seconds_count'), sum: of('dks_queue_wait_seconds_sum') };
}

describe('reportingQueueWait', () => {
  // The DataSource is only read when the gauges are scraped, which these tests do not do.
  const newMetrics = () => new AppMetrics({} as DataSource);

  it("reports a job's wait in the queue at its first start, and still runs it", async () => {
    const metrics = newMetrics();
    const process = vi.fn((_job: DeliveryJob, _token?: string) => Promise.resolve());
    const reporting = reportingQueueWait('vehicleCommands', process, metrics);
    const queued = job({ attemptsStarted: 1, timestamp: Date.now() - 250 });
    await reporting(queued, 'token');
    expect(process).toHaveBeenCalledWith(queued, 'token');
    const { count, sum } = await waits(metrics);
    expect(count).toBe(1);
    expect(sum).toBeGreaterThanOrEqual(0.25);
    expect(sum).toBeLessThan(5);
  });

  it('leaves out later starts and jobs queued with a delay: they waited on purpose', async () => {
    const metrics = newMetrics();
    const process = vi.fn(() => Promise.resolve());
    const reporting = reportingQueueWait('vehicleCommands', process, metrics);
    await reporting(job({ attemptsStarted: 2, timestamp: Date.now() - 60_000 }));
    await reporting(job({ attemptsStarted: 1, timestamp: Date.now() - 60_000, delay: 60_000 }));
    expect(process).toHaveBeenCalledTimes(2);
    expect((await waits(metrics)).count).toBe(0);
  });

  it('is the processor itself when no metrics are kept', () => {
    const process = () => Promise.resolve();
    expect(reportingQueueWait('vehicleCommands', process)).toBe(process);
  });
});
