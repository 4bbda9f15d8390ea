import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/**
 * Shared conventions of the benchmarks: latency summaries, the `--json` result shape
 * (`{"results":[{"name","value","unit","floor","target","ok"}]}`), progress on stderr and a
 * plain-text table on stdout.
 */

/**
 * The worker side of a multi-threaded benchmark: warm up, measure the task it was given, and
 * post the result back (the latency buffer is transferred, not copied).
 */
export function serveWorkerTask<T extends { readonly durationMs: number }, M extends Measurement>(
  measure: (task: T) => Promise<M>,
  warmUpMs: number,
): void {
  if (isMainThread || !parentPort) return;
  const port = parentPort;
  const task = workerData as T;
  // Each worker warms its own JIT before the measured run.
  measure({ ...task, durationMs: warmUpMs })
    .then(() => measure(task))
    .then(
      (result) => port.postMessage(result, [result.latenciesNs.buffer as ArrayBuffer]),
      (error: unknown) => {
        throw error;
      },
    );
}

/** Runs `task` in a worker thread started from `file` (which calls serveWorkerTask). */
export function runInWorker<T, M>(file: string, task: T): Promise<M> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(file, { workerData: task });
    worker.once('message', (result: M) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with ${code}`));
    });
  });
}

/** Units where less is better: their target is an upper bound. */
export const LOWER_IS_BETTER: ReadonlySet<string> = new Set(['ms', 'µs', 's', 'MiB', '%', 'count']);

/** A target as the tables print it: `≤ 50` for units where less is better, `≥ 1000` otherwise. */
export function targetBound(result: Pick<BenchResult, 'target' | 'unit'>): string {
  if (result.target === null) return '—';
  return `${LOWER_IS_BETTER.has(result.unit) ? '≤' : '≥'}${String(result.target)}`;
}

/** One line of `--json` output. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  floor: number;
  target: number | null;
  ok: boolean | null;
}

/** What one thread measured. */
export interface Measurement {
  readonly count: number;
  readonly timedNs: number;
  /** Per-operation latencies, nanoseconds. */
  readonly latenciesNs: Float64Array;
  readonly failures: number;
}

export interface LatencySummary {
  /** Operations per second, summed over threads that ran side by side. */
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly count: number;
  readonly failures: number;
}

export const jsonOutput = process.argv.includes('--json');
export const quickRun = process.argv.includes('--quick');

export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** One progress line for a measured configuration; returns the summary for chaining. */
export function progressSummary(label: string, summary: LatencySummary): LatencySummary {
  progress(
    `    ${label}: ${summary.rate.toFixed(1)}/s, p50 ${summary.p50Ms.toFixed(2)} ms, p99 ${summary.p99Ms.toFixed(2)} ms` +
      ` (${summary.count})${summary.failures ? `, ${summary.failures} FAILED` : ''}`,
  );
  return summary;
}

export function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Measurements one thread took one after another (rounds), as one measurement. */
export function concatenateMeasurements(measurements: readonly Measurement[]): Measurement {
  const latencies = new Float64Array(measurements.reduce((n, m) => n + m.latenciesNs.length, 0));
  let offset = 0;
  for (const m of measurements) {
    latencies.set(m.latenciesNs, offset);
    offset += m.latenciesNs.length;
  }
  return {
    count: measurements.reduce((n, m) => n + m.count, 0),
    timedNs: measurements.reduce((n, m) => n + m.timedNs, 0),
    latenciesNs: latencies,
    failures: measurements.reduce((n, m) => n + m.failures, 0),
  };
}

export function summariseLatencies(measurements: readonly Measurement[]): LatencySummary {
  const all = new Float64Array(measurements.reduce((n, m) => n + m.latenciesNs.length, 0));
  let offset = 0;
  for (const m of measurements) {
    all.set(m.latenciesNs, offset);
    offset += m.latenciesNs.length;
  }
  all.sort();
  return {
    // Threads run side by side: the aggregate rate is the sum of each thread's rate.
    rate: measurements.reduce((sum, m) => sum + m.count / (m.timedNs / 1e9), 0),
    p50Ms: percentile(all, 50) / 1e6,
    p99Ms: percentile(all, 99) / 1e6,
    count: all.length,
    failures: measurements.reduce((n, m) => n + m.failures, 0),
  };
}

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** `--json`: only the results; otherwise the table and its notes. */
export function printReport(
  results: readonly BenchResult[],
  header: readonly string[],
  rows: readonly string[][],
  notes: readonly string[],
): void {
  if (jsonOutput) {
    process.stdout.write(`${JSON.stringify({ results })}\n`);
    return;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ');
  const out = ['', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', ...notes, ''];
  process.stdout.write(out.join('\n'));
}
