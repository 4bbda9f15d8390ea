import 'reflect-metadata';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connectDatabase } from '../src/app/dependencies.js';
import { loadConfig, type AppConfig } from '../src/config/config.js';
import { QUEUE_NAMES } from '../src/telematics/delivery-policy.js';
import { VehiclesModule } from '../src/vehicles/vehicles.module.js';
import { VehiclesService } from '../src/vehicles/vehicles.service.js';
import { servicesContext } from './api-database.js';
import {
  BENCH_REDIS_URL,
  benchContext,
  httpRequest,
  measureCpu,
  openConnection,
  postgresBackends,
  redisServerPid,
  prepareBenchSystem,
  runCleanup,
  startServerProcess,
  type MtlsTarget,
  type ServerProcess,
} from './api-system.js';
import {
  jsonOutput,
  percentile,
  printReport,
  progress,
  quickRun,
  round,
  targetBound,
  type BenchResult,
} from './report.js';

/**
 * `npm run bench:revocation` — revocations through the whole path: the Device OEM's
 * `POST /partner/v1/keys/{keyId}/terminate` over mTLS commits the state change with its outbox
 * rows; the worker relays them to BullMQ, signs SET_STATE and pushes it to the car; the car (in
 * the car-fleet process) verifies it, applies it and answers with its signed ack, which the
 * worker verifies and records. Measured: commit → car ack latency at 200/s and at saturation,
 * recovery after the worker is killed, and the processes' peak memory. `--soak[=minutes]` runs
 * 200/s (or `--soak-rate=N`) for 10 minutes (or the given minutes) and reports the resident memory curve.
 */

const RATE = 200;
const FRIENDS_PER_VEHICLE = 10;
const SATURATION_CONNECTIONS = 24;
const TARGETS = { p99Ms: 50, recoverySeconds: 10, soakGrowth: 0.1 };
const soakArg = process.argv.find((arg) => arg.startsWith('--soak'));
const SOAK_MINUTES = soakArg ? Number(soakArg.split('=')[1] ?? 10) : 0;
const soakRateArg = process.argv.find((arg) => arg.startsWith('--soak-rate='));
/** The soak's offered rate (default 200/s); keep it below the saturation point to soak, not to queue. */
const SOAK_RATE = soakRateArg ? Number(soakRateArg.split('=')[1]) : 200;
const PLAN = quickRun
  ? { warmUpSeconds: 2, steadySeconds: 6, saturationSeconds: 5, killSeconds: 14, killAtSeconds: 3 }
  : { warmUpSeconds: 4, steadySeconds: 20, saturationSeconds: 12, killSeconds: 24, killAtSeconds: 4 };
const SATURATION_KEYS_PER_SECOND = 1_200;
const PARTNER = 'device-oem';

const wallClock = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// -----------------------------------------------------------------------------------------------
// The car fleet (its own process) and what it reports
// -----------------------------------------------------------------------------------------------

interface Fleet {
  readonly process: ChildProcess;
  readonly telematicsPort: number;
  readonly deviceOemPort: number;
  /** keyId → wall-clock ms at which its car applied SET_STATE and signed the ack. */
  readonly applied: Map<string, number>;
  request<T>(message: object, answer: string): Promise<T>;
  stop(): Promise<void>;
}

async function startFleet(pkiDir: string): Promise<Fleet> {
  const child = fork(join(__dirname, 'car-fleet.js'), [pkiDir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const applied = new Map<string, number>();
  const waiters = new Map<string, (message: Record<string, unknown>) => void>();
  child.on('message', (message: Record<string, unknown>) => {
    if (message.type === 'applied') {
      for (const [keyId, at] of message.items as Array<[string, number]>)
        if (!applied.has(keyId)) applied.set(keyId, at);
      return;
    }
    waiters.get(String(message.type))?.(message);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const request = <T>(message: object, answer: string) =>
    new Promise<T>((resolve, reject) => {
      waiters.set(answer, (reply) => resolve(reply as T));
      child.once('exit', (code) => reject(new Error(`the car fleet exited (${code}) before answering`)));
      if (Object.keys(message).length > 0) child.send(message);
    });
  const ready = await request<{ telematicsPort: number; deviceOemPort: number }>({}, 'ready');
  return {
    process: child,
    telematicsPort: ready.telematicsPort,
    deviceOemPort: ready.deviceOemPort,
    applied,
    request,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// -----------------------------------------------------------------------------------------------
// Set-up (untimed): vehicles provisioned through the project's service, keys seeded in SQL
// -----------------------------------------------------------------------------------------------

interface Seeded {
  /** Friend keys to revoke, interleaved across vehicles. */
  readonly keyIds: string[];
}

async function provisionFleet(
  config: AppConfig,
  fleet: Fleet,
  vehicleCount: number,
  placeholderPem: string,
): Promise<Seeded> {
  const run = randomBytes(2).toString('hex').toUpperCase();
  const vins = Array.from({ length: vehicleCount }, (_, i) => `RV${run}${String(i).padStart(11, '0')}`);
  const { publicKeys } = await fleet.request<{ publicKeys: string[] }>({ type: 'cars', vins }, 'cars');
  const dataSource = await connectDatabase(config, { applicationName: 'dks-bench-setup', poolSize: 8 });
  const app = await servicesContext({ config, dataSource }, [VehiclesModule]);
  try {
    const vehicles = app.get(VehiclesService);
    const attached: Array<{
      vin: string;
      vehicleIdentifier: string;
      telematicsPublicKeyPem: string;
      keyIds: string[];
    }> = new Array(vehicleCount);
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < vehicleCount) {
          const index = next++;
          const vin = vins[index];
          const created = await vehicles.provision(
            {
              vin,
              telematicsUrl: `https://127.0.0.1:${fleet.telematicsPort}/vehicles/${vin}/commands`,
              publicKey: publicKeys[index],
            },
            benchContext(),
          );
          attached[index] = {
            vin,
            vehicleIdentifier: created.vehicleIdentifier,
            telematicsPublicKeyPem: created.trust.telematicsPublicKeyPem,
            keyIds: [],
          };
          if ((index + 1) % 1_000 === 0) progress(`    ${index + 1} of ${vehicleCount} vehicles`);
        }
      }),
    );
    // An owner and its friends per vehicle, active, as if paired and shared earlier. The
    // certificate column only needs to be a certificate: revocation does not read it.
    const keyId = `substr(md5(random()::text || clock_timestamp()::text), 1, 16)`;
    await dataSource.query(
      `INSERT INTO digital_keys (key_identifier, vehicle_id, role, state, version, partner, endpoint_certificate_pem, entitlements)
       SELECT ${keyId}, id, 'owner', 'active', 1, $1, $2, '\\x01013f'::bytea FROM vehicles WHERE vin = ANY($3)`,
      [PARTNER, placeholderPem, vins],
    );
    await dataSource.query(
      `INSERT INTO digital_keys (key_identifier, vehicle_id, role, state, version, partner, endpoint_certificate_pem, entitlements, owner_key_id)
       SELECT ${keyId}, o.vehicle_id, 'friend', 'active', 1, $1, $2, '\\x010101'::bytea, o.id
         FROM digital_keys o JOIN vehicles v ON v.id = o.vehicle_id, generate_series(1, $4)
        WHERE o.role = 'owner' AND v.vin = ANY($3)`,
      [PARTNER, placeholderPem, vins, FRIENDS_PER_VEHICLE],
    );
    const rows = await dataSource.query<Array<{ vin: string; key_identifier: string; role: string }>>(
      `SELECT v.vin, k.key_identifier, k.role FROM digital_keys k JOIN vehicles v ON v.id = k.vehicle_id
        WHERE v.vin = ANY($1) ORDER BY k.created_at, k.key_identifier`,
      [vins],
    );
    const byVin = new Map(attached.map((car) => [car.vin, car]));
    const friendsByVehicle: string[][] = [];
    const vehicleIndex = new Map(vins.map((vin, i) => [vin, i]));
    for (const row of rows) {
      byVin.get(row.vin)!.keyIds.push(row.key_identifier);
      if (row.role === 'friend') (friendsByVehicle[vehicleIndex.get(row.vin)!] ??= []).push(row.key_identifier);
    }
    await fleet.request({ type: 'attach', cars: attached }, 'attached');
    // Interleaved: consecutive revocations go to different cars, as independent users would.
    const keyIds: string[] = [];
    for (let round = 0; round < FRIENDS_PER_VEHICLE; round++) {
      for (const friends of friendsByVehicle) if (friends?.[round]) keyIds.push(friends[round]);
    }
    return { keyIds };
  } finally {
    await app.close();
    await dataSource.destroy();
  }
}

// -----------------------------------------------------------------------------------------------
// Load: terminate calls over mTLS, open loop at a fixed rate or closed loop at saturation
// -----------------------------------------------------------------------------------------------

interface Issued {
  /** keyId → wall-clock ms at which the api answered 200 (the state change was committed). */
  readonly committed: Map<string, number>;
  failures: number;
  /** Worst lag of a request behind its due time, ms (the load generator's own health). */
  maxLagMs: number;
  /** keyId → how long the api took to answer the terminate request, ms. */
  readonly answeredInMs: Map<string, number>;
}

function terminateRequest(keyId: string): Buffer {
  return httpRequest('POST', `/partner/v1/keys/${keyId}/terminate`, { body: '{"reason":"benchmark"}' });
}

/** Open loop: revocation i is due at start + i / rate; a free keep-alive connection takes it. */
async function revokeAtRate(
  target: MtlsTarget,
  keyIds: readonly string[],
  rate: number,
  issued: Issued,
  onTick?: (elapsedMs: number) => void,
): Promise<void> {
  const connections = await Promise.all(Array.from({ length: 16 }, () => openConnection(target)));
  const idle = [...connections];
  const started = performance.now();
  let next = 0;
  let inFlight = 0;
  await new Promise<void>((resolve, reject) => {
    const dispatch = (connection: (typeof connections)[number], index: number) => {
      inFlight++;
      const keyId = keyIds[index];
      const sent = wallClock();
      connection.send(terminateRequest(keyId)).then((status) => {
        const answered = wallClock();
        issued.answeredInMs.set(keyId, answered - sent);
        if (status === 200) issued.committed.set(keyId, answered);
        else issued.failures++;
        inFlight--;
        idle.push(connection);
        if (next >= keyIds.length && inFlight === 0) resolve();
      }, reject);
    };
    const tick = () => {
      const elapsed = performance.now() - started;
      onTick?.(elapsed);
      while (next < keyIds.length && (next * 1000) / rate <= elapsed) {
        const connection = idle.pop();
        if (!connection) break;
        issued.maxLagMs = Math.max(issued.maxLagMs, elapsed - (next * 1000) / rate);
        dispatch(connection, next++);
      }
      if (next < keyIds.length) setTimeout(tick, 1);
    };
    tick();
  });
  for (const connection of connections) connection.close();
}

/** Closed loop: `connections` clients each revoke the next key as soon as the last was committed. */
async function revokeAtSaturation(
  target: MtlsTarget,
  keyIds: readonly string[],
  durationMs: number,
  issued: Issued,
): Promise<number> {
  const connections = await Promise.all(Array.from({ length: SATURATION_CONNECTIONS }, () => openConnection(target)));
  const deadline = performance.now() + durationMs;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    connections.map(async (connection) => {
      while (performance.now() < deadline && next < keyIds.length) {
        const keyId = keyIds[next++];
        if ((await connection.send(terminateRequest(keyId))) === 200) issued.committed.set(keyId, wallClock());
        else issued.failures++;
      }
    }),
  );
  for (const connection of connections) connection.close();
  if (next >= keyIds.length) progress('  ! the saturation phase ran out of keys; the rate is a lower bound');
  return performance.now() - started;
}

/** Waits until the cars applied every committed revocation (or the timeout passes); returns how many are missing. */
async function drained(fleet: Fleet, keyIds: Iterable<string>, timeoutMs: number): Promise<number> {
  const wanted = [...keyIds];
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const missing = wanted.filter((keyId) => !fleet.applied.has(keyId)).length;
    if (missing === 0 || performance.now() > deadline) return missing;
    await sleep(50);
  }
}

interface LatencyFigures {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly count: number;
  readonly negative: number;
}

/** Commit (the api's 200) → the car's ack, for the given keys. */
/** How long the api took to answer the terminate requests of `keyIds` (the commit, as the partner sees it). */
function answerTimes(issued: Issued, keyIds: Iterable<string>): { p50: number; p99: number } {
  const values: number[] = [];
  for (const keyId of keyIds) {
    const ms = issued.answeredInMs.get(keyId);
    if (ms !== undefined) values.push(ms);
  }
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

function reportPhase(fleet: Fleet, issued: Issued, keyIds: readonly string[]): void {
  const answered = answerTimes(issued, keyIds);
  const acked = latencies(fleet, issued, keyIds);
  progress(
    `    api answered p50 ${answered.p50.toFixed(1)} ms, p99 ${answered.p99.toFixed(1)} ms; ` +
      `commit → car ack p50 ${acked.p50.toFixed(1)} ms, p99 ${acked.p99.toFixed(1)} ms; ` +
      `load generator lag so far ${issued.maxLagMs.toFixed(0)} ms`,
  );
}

function latencies(fleet: Fleet, issued: Issued, keyIds: Iterable<string>): LatencyFigures {
  const values: number[] = [];
  let negative = 0;
  for (const keyId of keyIds) {
    const committed = issued.committed.get(keyId);
    const applied = fleet.applied.get(keyId);
    if (committed === undefined || applied === undefined) continue;
    // The car can answer before the api's response reaches the load generator: count it as 0.
    if (applied < committed) negative++;
    values.push(Math.max(0, applied - committed));
  }
  const sorted = Float64Array.from(values).sort();
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    count: values.length,
    negative,
  };
}

/**
 * Where a revocation's time goes, per key: the api's answer (commit) → the relay published its
 * outbox row (`published_at`) → a worker took the job (BullMQ's `processedOn`) → the car applied
 * it. Read after the phase, from PostgreSQL and Redis; every clock is this machine's.
 */
async function hops(
  databaseUrl: string,
  queuePrefix: string,
  fleet: Fleet,
  issued: Issued,
  keyIds: readonly string[],
): Promise<string> {
  const db = new Client({ connectionString: databaseUrl });
  const redis = new Redis(BENCH_REDIS_URL, { lazyConnect: true });
  try {
    await db.connect();
    const { rows } = await db.query<{ keyId: string; jobId: string; published: number }>(
      `SELECT d.fields->>'keyId' AS "keyId", o.id AS "jobId", extract(epoch FROM o.published_at) * 1000 AS published
         FROM deliveries d JOIN outbox o ON o.delivery_id = d.id AND o.topic = 'vehicle-command'
        WHERE d.command = 'SET_STATE' AND d.fields->>'keyId' = ANY($1)`,
      [keyIds],
    );
    await redis.connect();
    const pipeline = redis.pipeline();
    for (const row of rows) pipeline.hget(`${queuePrefix}:${QUEUE_NAMES.vehicleCommands}:${row.jobId}`, 'processedOn');
    const taken = ((await pipeline.exec()) ?? []).map(([, value]) => Number(value));
    const stages: Record<'relayed' | 'taken' | 'applied', number[]> = { relayed: [], taken: [], applied: [] };
    rows.forEach((row, index) => {
      const committed = issued.committed.get(row.keyId);
      const applied = fleet.applied.get(row.keyId);
      if (committed === undefined || applied === undefined || !Number.isFinite(taken[index])) return;
      stages.relayed.push(Math.max(0, Number(row.published) - committed));
      stages.taken.push(Math.max(0, taken[index] - Number(row.published)));
      stages.applied.push(Math.max(0, applied - taken[index]));
    });
    const shown = (values: number[]) => {
      const sorted = Float64Array.from(values).sort();
      return `p50 ${percentile(sorted, 50).toFixed(1)} / p99 ${percentile(sorted, 99).toFixed(1)} ms`;
    };
    return (
      `commit → relayed ${shown(stages.relayed)}; relayed → job taken ${shown(stages.taken)}; ` +
      `job taken → car applied ${shown(stages.applied)} (${stages.applied.length} keys)`
    );
  } finally {
    redis.disconnect();
    await db.end();
  }
}

// -----------------------------------------------------------------------------------------------
// Floor: the bare BullMQ hop every revocation takes (add → a worker picks it up), same Redis
// -----------------------------------------------------------------------------------------------

async function queueFloor(prefix: string, rate: number, seconds: number): Promise<LatencyFigures> {
  const connection = { url: BENCH_REDIS_URL };
  const queue = new Queue('floor', { connection, prefix });
  const picked: number[] = [];
  const worker = new Worker(
    'floor',
    (job) => {
      picked.push(wallClock() - (job.data as { at: number }).at);
      return Promise.resolve();
    },
    { connection, prefix, concurrency: 32 },
  );
  await worker.waitUntilReady();
  const count = rate * seconds;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await queue.add('job', { at: wallClock() }, { removeOnComplete: true });
  }
  while (picked.length < count) await sleep(20);
  await worker.close();
  await queue.close();
  const sorted = Float64Array.from(picked).sort();
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    count: sorted.length,
    negative: 0,
  };
}

function rssMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

// -----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  progress(
    `revocation benchmark: node ${process.version}, ${cpus().length} cores${quickRun ? ' (quick)' : ''}${SOAK_MINUTES ? `, soak ${SOAK_MINUTES} min` : ''}`,
  );
  const cleanup: Array<() => Promise<void> | void> = [];
  const results: BenchResult[] = [];
  const rows: string[][] = [];
  const notes: string[] = [];
  const add = (result: BenchResult, shown: string, floorShown = '—') => {
    results.push(result);
    const status = result.ok === null ? 'info' : result.ok ? 'ok' : 'MISSED';
    rows.push([result.name, shown, floorShown, targetBound(result), status]);
  };
  try {
    const { pki, queuePrefix, env: baseEnv } = await prepareBenchSystem(cleanup);
    const fleet = await startFleet(pki.dir);
    cleanup.push(() => fleet.stop());

    const steadyKeys =
      RATE * (PLAN.warmUpSeconds + PLAN.steadySeconds * 1.5 + PLAN.killSeconds) + SOAK_RATE * SOAK_MINUTES * 60;
    const totalKeys = steadyKeys + SATURATION_KEYS_PER_SECOND * PLAN.saturationSeconds;
    const vehicleCount = Math.ceil(totalKeys / FRIENDS_PER_VEHICLE);
    const env = {
      ...baseEnv,
      PARTNER_NOTIFICATION_URLS: `${PARTNER}=https://localhost:${fleet.deviceOemPort}`,
    };
    const config = loadConfig({ ...process.env, ...env });
    progress(`  … ${vehicleCount} cars with an owner and ${FRIENDS_PER_VEHICLE} friends each (set-up, untimed)`);
    const { keyIds } = await provisionFleet(config, fleet, vehicleCount, pki.set.vehicleOemRootCert);
    let cursor = 0;
    const take = (count: number) => keyIds.slice(cursor, (cursor += count));

    progress('  … starting the api and worker processes');
    const api = await startServerProcess(
      join(__dirname, '../src/main.js'),
      env,
      /mTLS listener on https:\/\/[^\s]+:(\d+)/,
    );
    cleanup.push(() => api.stop());
    let worker: ServerProcess = await startServerProcess(
      join(__dirname, '../src/worker.js'),
      env,
      /metrics on http:\/\/[^\s]+:(\d+)/,
    );
    cleanup.push(() => worker.stop());
    const target: MtlsTarget = {
      port: api.port,
      caPem: pki.set.vehicleOemRootCert,
      certPem: pki.set.deviceOemClientCert,
      keyPem: pki.set.deviceOemClientKey,
    };
    const issued: Issued = { committed: new Map(), failures: 0, maxLagMs: 0, answeredInMs: new Map() };

    progress(`  … warm-up: ${PLAN.warmUpSeconds} s at ${RATE / 2}/s`);
    const warm = take((RATE / 2) * PLAN.warmUpSeconds);
    await revokeAtRate(target, warm, RATE / 2, issued);
    await drained(fleet, warm, 15_000);
    progress(`  … ${PLAN.steadySeconds} s at ${RATE / 2}/s`);
    const half = take((RATE / 2) * PLAN.steadySeconds);
    await revokeAtRate(target, half, RATE / 2, issued);
    await drained(fleet, half, 15_000);
    const atHalfRate = latencies(fleet, issued, half);
    reportPhase(fleet, issued, half);
    progress(`    hops: ${await hops(config.databaseUrl, queuePrefix, fleet, issued, half)}`);

    progress(`  … steady: ${PLAN.steadySeconds} s at ${RATE}/s`);
    const steady = take(RATE * PLAN.steadySeconds);
    const redisPid = await redisServerPid(BENCH_REDIS_URL);
    const endCpu = await measureCpu({
      api: [api.pid],
      worker: [worker.pid],
      PostgreSQL: () => postgresBackends(config.databaseUrl),
      Redis: [redisPid],
      'car fleet (simulator)': [fleet.process.pid!],
      'load generator': [process.pid],
    });
    const steadyStart = wallClock();
    await revokeAtRate(target, steady, RATE, issued);
    const steadyMissing = await drained(fleet, steady, 15_000);
    const cpu = await endCpu();
    const steadyWindow = Math.max(...steady.map((k) => fleet.applied.get(k) ?? 0)) - steadyStart;
    const atRate = latencies(fleet, issued, steady);
    reportPhase(fleet, issued, steady);
    progress(`    hops: ${await hops(config.databaseUrl, queuePrefix, fleet, issued, steady)}`);
    const floor = await queueFloor(`${queuePrefix}:floor`, RATE, quickRun ? 3 : 5);
    add(
      {
        name: `revocation commit → car ack p50 @${RATE}/s`,
        value: round(atRate.p50, 2),
        unit: 'ms',
        floor: round(floor.p50, 2),
        target: null,
        ok: null,
      },
      `${atRate.p50.toFixed(1)} ms`,
      `${floor.p50.toFixed(2)} ms`,
    );
    add(
      {
        name: `revocation commit → car ack p95 @${RATE}/s`,
        value: round(atRate.p95, 2),
        unit: 'ms',
        floor: round(floor.p95, 2),
        target: null,
        ok: null,
      },
      `${atRate.p95.toFixed(1)} ms`,
      `${floor.p95.toFixed(2)} ms`,
    );
    add(
      {
        name: `revocation commit → car ack p99 @${RATE}/s`,
        value: round(atRate.p99, 2),
        unit: 'ms',
        floor: round(floor.p99, 2),
        target: TARGETS.p99Ms,
        ok: atRate.p99 <= TARGETS.p99Ms && steadyMissing === 0,
      },
      `${atRate.p99.toFixed(1)} ms`,
      `${floor.p99.toFixed(2)} ms`,
    );
    add(
      {
        name: `revocation commit → car ack p50 @${RATE / 2}/s`,
        value: round(atHalfRate.p50, 2),
        unit: 'ms',
        floor: round(floor.p50, 2),
        target: null,
        ok: null,
      },
      `${atHalfRate.p50.toFixed(1)} ms`,
      `${floor.p50.toFixed(2)} ms`,
    );
    add(
      {
        name: `revocation commit → car ack p99 @${RATE / 2}/s`,
        value: round(atHalfRate.p99, 2),
        unit: 'ms',
        floor: round(floor.p99, 2),
        target: null,
        ok: null,
      },
      `${atHalfRate.p99.toFixed(1)} ms`,
      `${floor.p99.toFixed(2)} ms`,
    );
    // Where the CPU went: per revocation, per process, and how busy the whole machine was.
    const perRevocation = (ms: number) => ms / Math.max(1, atRate.count);
    progress(
      `    CPU per revocation @${RATE}/s: ` +
        Object.entries(cpu.byGroup)
          .map(([name, ms]) => `${name} ${perRevocation(ms).toFixed(2)} ms`)
          .join(', ') +
        `; machine busy ${((cpu.machineBusyMs / cpu.wallMs / cpus().length) * 100).toFixed(0)} % of ${cpus().length} cores`,
    );
    for (const [name, ms] of Object.entries(cpu.byGroup)) {
      add(
        {
          name: `CPU per revocation @${RATE}/s: ${name}`,
          value: round(perRevocation(ms), 2),
          unit: 'ms',
          floor: 0,
          target: null,
          ok: null,
        },
        `${perRevocation(ms).toFixed(2)} ms`,
      );
    }
    const busy = (cpu.machineBusyMs / cpu.wallMs / cpus().length) * 100;
    add(
      {
        name: `machine busy @${RATE}/s (all processes, ${cpus().length} cores)`,
        value: round(busy, 0),
        unit: '%',
        floor: 0,
        target: null,
        ok: null,
      },
      `${busy.toFixed(0)} %`,
    );
    const sustained = (atRate.count / steadyWindow) * 1000;
    add(
      {
        name: `revocations acked per second @${RATE}/s offered`,
        value: round(sustained, 1),
        unit: '/s',
        floor: RATE,
        target: RATE * 0.95,
        ok: sustained >= RATE * 0.95,
      },
      `${sustained.toFixed(0)}/s`,
      `${RATE}/s offered`,
    );

    progress(`  … saturation: ${SATURATION_CONNECTIONS} clients, closed loop, ${PLAN.saturationSeconds} s`);
    const saturationKeys = take(SATURATION_KEYS_PER_SECOND * PLAN.saturationSeconds);
    const saturationStart = wallClock();
    await revokeAtSaturation(target, saturationKeys, PLAN.saturationSeconds * 1000, issued);
    const saturationCommitted = saturationKeys.filter((k) => issued.committed.has(k));
    const saturationMissing = await drained(fleet, saturationCommitted, 60_000);
    const lastAck = Math.max(...saturationCommitted.map((k) => fleet.applied.get(k) ?? 0));
    const saturationRate = (saturationCommitted.length / (lastAck - saturationStart)) * 1000;
    const atSaturation = latencies(fleet, issued, saturationCommitted);
    add(
      {
        name: 'revocations acked per second at saturation',
        value: round(saturationRate, 1),
        unit: '/s',
        floor: 0,
        target: null,
        ok: null,
      },
      `${saturationRate.toFixed(0)}/s`,
    );
    add(
      {
        name: 'revocation commit → car ack p50 at saturation',
        value: round(atSaturation.p50, 2),
        unit: 'ms',
        floor: 0,
        target: null,
        ok: null,
      },
      `${atSaturation.p50.toFixed(1)} ms`,
    );
    add(
      {
        name: 'revocation commit → car ack p99 at saturation',
        value: round(atSaturation.p99, 2),
        unit: 'ms',
        floor: 0,
        target: null,
        ok: null,
      },
      `${atSaturation.p99.toFixed(1)} ms`,
    );
    if (saturationMissing > 0) notes.push(`! ${saturationMissing} saturation revocations were not acked within 60 s.`);
    await sleep(2_000);

    progress(
      `  … worker killed (SIGKILL) ${PLAN.killAtSeconds} s into ${PLAN.killSeconds} s at ${RATE}/s, restarted at once`,
    );
    const killKeys = take(RATE * PLAN.killSeconds);
    const workerPeakBeforeKill = rssMiB(worker.pid, 'VmHWM');
    let killedAt = 0;
    let restartedAt = 0;
    const restart = (async () => {
      await sleep(PLAN.killAtSeconds * 1000);
      killedAt = wallClock();
      process.kill(worker.pid, 'SIGKILL');
      worker = await startServerProcess(join(__dirname, '../src/worker.js'), env, /metrics on http:\/\/[^\s]+:(\d+)/);
      restartedAt = wallClock();
    })();
    await revokeAtRate(target, killKeys, RATE, issued);
    await restart;
    const killMissing = await drained(fleet, killKeys, 60_000);
    // Recovery: from the kill until every revocation committed before the new worker was up is acked.
    const before = killKeys.filter((k) => (issued.committed.get(k) ?? Infinity) <= restartedAt);
    const recovery = (Math.max(...before.map((k) => fleet.applied.get(k) ?? Infinity)) - killedAt) / 1000;
    add(
      {
        name: 'recovery after the worker is killed',
        value: round(recovery, 2),
        unit: 's',
        floor: round((restartedAt - killedAt) / 1000, 2),
        target: TARGETS.recoverySeconds,
        ok: recovery <= TARGETS.recoverySeconds && killMissing === 0,
      },
      `${recovery.toFixed(1)} s`,
      `${((restartedAt - killedAt) / 1000).toFixed(1)} s restart`,
    );
    const lost = issued.committed.size - [...issued.committed.keys()].filter((k) => fleet.applied.has(k)).length;
    add(
      {
        name: 'revocations committed but never acked',
        value: lost,
        unit: 'count',
        floor: 0,
        target: 0,
        ok: lost === 0,
      },
      String(lost),
    );

    if (SOAK_MINUTES > 0) {
      progress(`  … soak: ${SOAK_MINUTES} min at ${SOAK_RATE}/s, resident memory sampled every 10 s`);
      const soakKeys = take(SOAK_RATE * SOAK_MINUTES * 60);
      const curve: Array<[number, number, number, number]> = [];
      let nextSample = 0;
      await revokeAtRate(target, soakKeys, SOAK_RATE, issued, (elapsed) => {
        if (elapsed < nextSample) return;
        nextSample += 10_000;
        curve.push([
          Math.round(elapsed / 1000),
          rssMiB(api.pid, 'VmRSS'),
          rssMiB(worker.pid, 'VmRSS'),
          rssMiB(fleet.process.pid!, 'VmRSS'),
        ]);
      });
      await drained(fleet, soakKeys, 60_000);
      const soakLatency = latencies(fleet, issued, soakKeys);
      const warmed = curve.find(([second]) => second >= 60) ?? curve[0];
      const last = curve[curve.length - 1];
      for (const [label, column] of [
        ['api', 1],
        ['worker', 2],
        ['car fleet', 3],
      ] as const) {
        const growth = (last[column] - warmed[column]) / warmed[column];
        add(
          {
            name: `soak: ${label} resident memory growth after warm-up`,
            value: round(growth * 100, 1),
            unit: '%',
            floor: round(warmed[column], 1),
            target: TARGETS.soakGrowth * 100,
            ok: growth <= TARGETS.soakGrowth,
          },
          `${(growth * 100).toFixed(1)} % (${warmed[column].toFixed(0)} → ${last[column].toFixed(0)} MiB)`,
        );
      }
      add(
        {
          name: `soak: commit → car ack p99 @${SOAK_RATE}/s`,
          value: round(soakLatency.p99, 2),
          unit: 'ms',
          floor: 0,
          target: TARGETS.p99Ms,
          ok: soakLatency.p99 <= TARGETS.p99Ms,
        },
        `${soakLatency.p99.toFixed(1)} ms`,
      );
      notes.push('Soak curve (seconds: api / worker / car fleet resident MiB):');
      for (let i = 0; i < curve.length; i += 3) {
        const [second, a, w, f] = curve[i];
        notes.push(`  ${String(second).padStart(4)} s: ${a.toFixed(0)} / ${w.toFixed(0)} / ${f.toFixed(0)}`);
      }
    }

    for (const [label, pid] of [
      ['api', api.pid],
      ['car fleet', fleet.process.pid!],
    ] as const) {
      const peak = rssMiB(pid, 'VmHWM');
      add(
        { name: `peak RSS: ${label}`, value: round(peak, 1), unit: 'MiB', floor: 0, target: null, ok: null },
        `${peak.toFixed(0)} MiB`,
      );
    }
    add(
      {
        name: 'peak RSS: worker',
        value: round(workerPeakBeforeKill, 1),
        unit: 'MiB',
        floor: 0,
        target: null,
        ok: null,
      },
      `${workerPeakBeforeKill.toFixed(0)} MiB`,
    );
    notes.push(
      `Path: POST /partner/v1/keys/{keyId}/terminate over mTLS (Device OEM certificate) → commit with outbox rows → worker`,
      'relay → BullMQ → signed SET_STATE over HTTPS to the car-fleet process → the car verifies, applies, signs its ack',
      '→ the worker verifies and records it. Latency: from the api answering 200 (committed) to the car signing its ack,',
      `both stamped on this machine's wall clock; ${atRate.negative} acks at ${RATE}/s beat the api's answer to the load generator (counted as 0).`,
      `Floor: the bare BullMQ hop every revocation takes (Queue.add → a Worker picks the job), same Redis, ${RATE}/s.`,
      `Saturation: ${SATURATION_CONNECTIONS} clients in a closed loop; the rate counts revocations acked by the cars.`,
      `Cars: ${vehicleCount}, each with an owner and ${FRIENDS_PER_VEHICLE} friends; friends are revoked, spread across cars.`,
      `Load generator max lag behind schedule: ${issued.maxLagMs.toFixed(1)} ms; failed requests: ${issued.failures}.`,
    );
    if (issued.failures > 0) notes.push(`! ${issued.failures} terminate calls did not answer 200.`);
  } finally {
    await runCleanup(cleanup);
  }
  printReport(results, ['figure', 'value', 'floor / reference', 'target', 'status'], rows, notes);
  if (!jsonOutput) process.stdout.write('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`revocation benchmark failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
