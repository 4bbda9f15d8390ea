import { availableParallelism } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { ENTITLEMENT_PROFILES } from '../src/protocol/entitlements.js';
import type { TransactionCode } from '../src/protocol/transaction.js';
import { NfcLink } from '../src/sim/nfc/nfc-link.js';
import { provisionKey } from '../src/sim/nfc/provision-key.js';
import { tap } from '../src/sim/nfc/tap.js';
import { SoftwareSecureElement } from '../src/sim/secure-element/software-secure-element.js';
import { SimulatedVehicle } from '../src/sim/vehicle/simulated-vehicle.js';
import type { ReaderLocation } from '../src/sim/vehicle/vehicle-events.js';
import { CryptoFloor, type FloorScenario } from './crypto-floor.js';
import { EphemeralPool } from './ephemeral-pool.js';
import {
  printReport,
  progress,
  quickRun as quick,
  round,
  summariseLatencies,
  type BenchResult as Result,
  type Measurement as ThreadMeasurement,
  runInWorker,
  serveWorkerTask,
} from './report.js';

/**
 * Transactions per second and latency of the simulated car + software SE over a zero-latency
 * NFC link, next to the floor (bare node:crypto operations of the same transaction), measured
 * in the same run. `npm run bench:transactions [-- --json] [-- --quick]` (quick: short runs, a smoke test).
 * Progress goes to stderr; the table (or, with --json, only the JSON results) to stdout.
 */

type Scenario = FloorScenario;
type Path = 'measured' | 'floor';
/** `pooled`: ephemerals precomputed between timed batches (as idle SEs and readers do); `inline`: generated in the timed path. */
type Ephemerals = 'pooled' | 'inline';

interface Task {
  readonly scenario: Scenario;
  readonly path: Path;
  readonly ephemerals: Ephemerals;
  readonly durationMs: number;
}

interface Measurement extends ThreadMeasurement {
  readonly poolMisses: number;
}

const BATCH = 256;
const WARM_UP_MS = 600;
const TARGETS = { standardTps: 1_000, fastTps: 5_000, standardP99Ms: 5, fastP99Ms: 1 } as const;
const ACTIONS: Readonly<Record<Scenario, { reader: ReaderLocation; action: TransactionCode }>> = {
  standard: { reader: 'console', action: 'engine-start' },
  fast: { reader: 'door', action: 'unlock' },
};

// -----------------------------------------------------------------------------------------------
// One measurement, in whichever thread runs it
// -----------------------------------------------------------------------------------------------

async function measure(task: Task): Promise<Measurement> {
  const latencies: number[] = [];
  let timedNs = 0;
  let failures = 0;
  let poolMisses = 0;
  const deadline = performance.now() + task.durationMs;

  if (task.path === 'floor') {
    const floor = new CryptoFloor(task.ephemerals === 'inline');
    while (performance.now() < deadline) {
      floor.refill(BATCH);
      for (let i = 0; i < BATCH; i++) {
        const started = process.hrtime.bigint();
        floor.run(task.scenario);
        const elapsed = Number(process.hrtime.bigint() - started);
        latencies.push(elapsed);
        timedNs += elapsed;
      }
    }
  } else {
    const carPool = new EphemeralPool();
    const devicePool = new EphemeralPool();
    const pooled = task.ephemerals === 'pooled';
    const car = new SimulatedVehicle({
      eventLogCapacity: 1_024,
      ...(pooled ? { ephemeralKeys: carPool.take } : {}),
    });
    const device = new SoftwareSecureElement(pooled ? { ephemeralKeys: devicePool.take } : {});
    provisionKey(device, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    const link = new NfcLink(device);
    const { reader, action } = ACTIONS[task.scenario];
    // The first tap establishes Kpersistent; fast taps rely on it.
    carPool.refill(1);
    devicePool.refill(1);
    await tap(device, car, 'door', 'unlock', { link });
    while (performance.now() < deadline) {
      if (pooled) {
        carPool.refill(BATCH);
        devicePool.refill(BATCH);
      }
      for (let i = 0; i < BATCH; i++) {
        const started = process.hrtime.bigint();
        const outcome = await tap(device, car, reader, action, { link });
        const elapsed = Number(process.hrtime.bigint() - started);
        latencies.push(elapsed);
        timedNs += elapsed;
        if (outcome.result !== 'granted' || outcome.transaction !== task.scenario) failures++;
      }
    }
    poolMisses = carPool.misses + devicePool.misses;
  }
  return { count: latencies.length, timedNs, latenciesNs: Float64Array.from(latencies), failures, poolMisses };
}

// -----------------------------------------------------------------------------------------------
// Worker side
// -----------------------------------------------------------------------------------------------

serveWorkerTask(measure, WARM_UP_MS);

function inWorker(task: Task): Promise<Measurement> {
  return runInWorker<Task, Measurement>(__filename, task);
}

// -----------------------------------------------------------------------------------------------
// Main side
// -----------------------------------------------------------------------------------------------

interface Summary {
  readonly tps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly count: number;
  readonly failures: number;
  readonly poolMisses: number;
}

function summarise(measurements: readonly Measurement[]): Summary {
  const { rate, ...latencies } = summariseLatencies(measurements);
  return { tps: rate, ...latencies, poolMisses: measurements.reduce((n, m) => n + m.poolMisses, 0) };
}

async function run(task: Task, threads: number): Promise<Summary> {
  const label = `${task.scenario} ${task.path} (${task.ephemerals} ephemerals, ${threads} thread${threads > 1 ? 's' : ''})`;
  progress(`  … ${label}`);
  const measurements =
    threads === 1 ? [await measure(task)] : await Promise.all(Array.from({ length: threads }, () => inWorker(task)));
  const summary = summarise(measurements);
  progress(
    `    ${summary.tps.toFixed(0)} tx/s, p50 ${summary.p50Ms.toFixed(3)} ms, p99 ${summary.p99Ms.toFixed(3)} ms` +
      (summary.failures ? `, ${summary.failures} FAILED` : ''),
  );
  return summary;
}

async function main(): Promise<void> {
  const measuredMs = quick ? 800 : 4_000;
  const floorMs = quick ? 500 : 2_000;
  const workers = Math.min(2, availableParallelism());
  progress(`transactions benchmark: node ${process.version}, ${availableParallelism()} cores`);
  progress('  … warm-up');
  for (const scenario of ['standard', 'fast'] as const) {
    await measure({ scenario, path: 'measured', ephemerals: 'pooled', durationMs: 500 });
    await measure({ scenario, path: 'floor', ephemerals: 'pooled', durationMs: 300 });
  }

  const results: Result[] = [];
  const rows: string[][] = [];
  const configurations: { ephemerals: Ephemerals; threads: number; label: string }[] = [
    { ephemerals: 'pooled', threads: 1, label: '1 thread, pooled ephemerals' },
    { ephemerals: 'inline', threads: 1, label: '1 thread, ephemerals generated inline' },
    { ephemerals: 'pooled', threads: workers, label: `${workers} worker threads, pooled ephemerals` },
  ];
  for (const config of configurations) {
    for (const scenario of ['standard', 'fast'] as const) {
      const floor = await run(
        { scenario, path: 'floor', ephemerals: config.ephemerals, durationMs: floorMs },
        config.threads,
      );
      const measured = await run(
        { scenario, path: 'measured', ephemerals: config.ephemerals, durationMs: measuredMs },
        config.threads,
      );
      const tpsTarget = scenario === 'standard' ? TARGETS.standardTps : TARGETS.fastTps;
      const p99Target = scenario === 'standard' ? TARGETS.standardP99Ms : TARGETS.fastP99Ms;
      const valid = measured.failures === 0;
      results.push(
        {
          name: `${scenario} tx/s (${config.label})`,
          value: round(measured.tps, 0),
          unit: 'tx/s',
          floor: round(floor.tps, 0),
          target: tpsTarget,
          ok: valid && measured.tps >= tpsTarget,
        },
        {
          name: `${scenario} p50 latency (${config.label})`,
          value: round(measured.p50Ms, 3),
          unit: 'ms',
          floor: round(floor.p50Ms, 3),
          target: null,
          ok: null,
        },
        {
          name: `${scenario} p99 latency (${config.label})`,
          value: round(measured.p99Ms, 3),
          unit: 'ms',
          floor: round(floor.p99Ms, 3),
          target: p99Target,
          ok: valid && measured.p99Ms <= p99Target,
        },
      );
      rows.push([
        `${scenario}`,
        config.label,
        measured.tps.toFixed(0),
        floor.tps.toFixed(0),
        `${((100 * measured.tps) / floor.tps).toFixed(0)}%`,
        measured.p50Ms.toFixed(3),
        measured.p99Ms.toFixed(3),
        floor.p99Ms.toFixed(3),
        `≥${tpsTarget}/s, p99≤${p99Target}ms`,
        valid && measured.tps >= tpsTarget && measured.p99Ms <= p99Target ? 'ok' : valid ? 'MISSED' : 'FAILED',
        `${measured.count}${measured.poolMisses ? ` (${measured.poolMisses} pool misses)` : ''}`,
      ]);
    }
  }

  const header = [
    'scenario',
    'configuration',
    'tx/s',
    'floor tx/s',
    'of floor',
    'p50 ms',
    'p99 ms',
    'floor p99',
    'target',
    'status',
    'transactions',
  ];
  printReport(results, header, rows, [
    'standard = engine start (always standard, §4.4); fast = unlock with a stored Kpersistent.',
    'Car + software SE in one process, zero-latency in-memory NFC link; every transaction is checked (granted, right type).',
    'pooled: ephemeral key pairs precomputed between timed batches, as SEs and readers do while idle; key generation',
    'is then off the timed path (for the floor too). inline: generated inside each timed transaction.',
    `worker threads: ${workers} independent car/phone pairs side by side; tx/s is the sum of both threads' rates.`,
    'floor: the bare node:crypto operations of the same transaction (ECDH, ECDSA, SHA-256/HKDF, AES/CMAC), same run.',
  ]);
}

if (isMainThread) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
