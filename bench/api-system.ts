import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import type { RequestContext } from '../src/common/request/request-context.js';
import { readPkiSet, writeDevPki, type PkiSet } from '../src/pki/dev-pki.js';
import type { Measurement } from './report.js';

/**
 * The server side and the load side of the API benchmark: a fresh database migrated with the
 * project's runner, a dev PKI in a temporary folder, server processes started from dist/ and
 * watched through /proc, and a small HTTP/1.1-over-mTLS load generator (keep-alive, open- and
 * closed-loop, and one new handshake per request).
 */

export const ADMIN_DATABASE_URL = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const BENCH_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DIST = join(__dirname, '..');
const START_TIMEOUT_MS = 30_000;

// -----------------------------------------------------------------------------------------------
// Database and PKI
// -----------------------------------------------------------------------------------------------

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

async function withAdminClient<T>(action: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${new URL(ADMIN_DATABASE_URL).host} (${(error as Error).message}); start it or set BENCH_DATABASE_ADMIN_URL`,
    );
  }
  try {
    return await action(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** An empty database, or a copy of `template` (which must have no open connection). */
export async function createDatabase(template?: string): Promise<BenchDatabase> {
  const name = `dks_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  await withAdminClient((client) =>
    client.query(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ''}`),
  );
  return {
    name,
    url: databaseUrl(name),
    drop: () =>
      withAdminClient((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

/** A fresh database migrated with the project's migration runner (`dist/src/database/migrate.js`). */
export async function createMigratedDatabase(): Promise<BenchDatabase> {
  const database = await createDatabase();
  try {
    await runNode(join(DIST, 'src/database/migrate.js'), { DATABASE_URL: database.url });
  } catch (error) {
    await database.drop();
    throw error;
  }
  return database;
}

export interface BenchPki {
  readonly dir: string;
  readonly set: PkiSet;
  remove(): void;
}

/** The development PKI written by the project's dev-PKI code into a temporary folder. */
export async function createBenchPki(): Promise<BenchPki> {
  const dir = mkdtempSync(join(tmpdir(), 'dks-bench-pki-'));
  await writeDevPki(dir);
  return { dir, set: readPkiSet(dir), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The environment of the api and worker processes a benchmark starts (every listener on a free port). */
export function benchConfig(pki: BenchPki, database: BenchDatabase, queuePrefix: string): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    REDIS_URL: BENCH_REDIS_URL,
    PKI_DIR: pki.dir,
    QUEUE_PREFIX: queuePrefix,
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    WORKER_METRICS_HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    // The partner budget stays enforced (tokens leased from Redis) but above the offered load.
    RATE_LIMIT_PARTNER_BURST: '1000000',
    RATE_LIMIT_PARTNER_PER_SECOND: '1000000',
  };
}

/** Clean-up steps, run last-in first-out; a failing one is reported and the rest still run. */
export type Cleanup = Array<() => Promise<void> | void>;

export async function runCleanup(cleanup: Cleanup): Promise<void> {
  for (const step of cleanup.reverse()) {
    await Promise.resolve()
      .then(step)
      .catch((error: unknown) => process.stderr.write(`    clean-up step failed: ${(error as Error).message}\n`));
  }
}

/**
 * What every server benchmark starts from: a dev PKI in a temporary folder, a fresh migrated
 * database, a queue prefix of its own, and the process environment pointing at them; each is
 * registered for clean-up.
 */
export async function prepareBenchSystem(
  cleanup: Cleanup,
): Promise<{ pki: BenchPki; database: BenchDatabase; queuePrefix: string; env: Record<string, string> }> {
  const pki = await createBenchPki();
  cleanup.push(() => pki.remove());
  const database = await createMigratedDatabase();
  cleanup.push(() => database.drop());
  const queuePrefix = `bench${randomBytes(4).toString('hex')}`;
  cleanup.push(() => removeQueueKeys(queuePrefix));
  return { pki, database, queuePrefix, env: benchConfig(pki, database, queuePrefix) };
}

/** Who the set-up steps act as, in the audit log. */
export function benchContext(): RequestContext {
  return { actor: { type: 'operator', id: 'benchmark' }, correlationId: randomUUID() };
}

/** Deletes a run's queues from Redis. */
export async function removeQueueKeys(prefix: string): Promise<void> {
  const redis = new Redis(BENCH_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = nextCursor;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

// -----------------------------------------------------------------------------------------------
// Processes
// -----------------------------------------------------------------------------------------------

function runNode(script: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${script} exited with ${code}: ${stderr.trim().slice(-400)}`)),
    );
  });
}

/** A server running as its own process. */
export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  /** Peak resident set size so far (VmHWM), MiB. */
  peakRssMiB(): number;
  stop(): Promise<void>;
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(match[1]) / 1024;
}

// -----------------------------------------------------------------------------------------------
// CPU accounting: where the machine's CPU time went during a phase (Linux /proc)
// -----------------------------------------------------------------------------------------------

/** Clock ticks per second of /proc's CPU times (USER_HZ): 100 on every Linux this runs on. */
const USER_HZ = 100;

/** CPU seconds (user + system) process `pid` has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return 0;
  }
}

/** CPU seconds the whole machine spent busy (not idle, not waiting for I/O) so far, over all cores. */
function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = ticks;
  return (user + nice + system + irq + softirq + steal) / USER_HZ;
}

/** The processes a phase's CPU time is split over: named groups of pids, fixed or found again at each sample. */
export type CpuGroups = Record<string, readonly number[] | (() => Promise<readonly number[]>)>;

export interface CpuSplit {
  /** CPU milliseconds per group over the phase. */
  readonly byGroup: Record<string, number>;
  /** Busy CPU milliseconds of the whole machine over the phase, all cores together. */
  readonly machineBusyMs: number;
  readonly wallMs: number;
}

/**
 * Starts measuring CPU time per group; the returned function ends the phase. A process that
 * starts during the phase counts from zero; one that ends during it is missed (keep such groups
 * stable across a phase, as connection pools are).
 */
export async function measureCpu(groups: CpuGroups): Promise<() => Promise<CpuSplit>> {
  const sample = async () => {
    const perGroup = new Map<string, Map<number, number>>();
    for (const [name, pids] of Object.entries(groups)) {
      const found = typeof pids === 'function' ? await pids() : pids;
      perGroup.set(name, new Map(found.map((pid) => [pid, cpuSeconds(pid)])));
    }
    return { perGroup, machine: machineBusySeconds(), at: performance.now() };
  };
  const start = await sample();
  return async () => {
    const end = await sample();
    const byGroup: Record<string, number> = {};
    for (const [name, pids] of end.perGroup) {
      let seconds = 0;
      for (const [pid, used] of pids) seconds += used - (start.perGroup.get(name)?.get(pid) ?? 0);
      byGroup[name] = seconds * 1000;
    }
    return { byGroup, machineBusyMs: (end.machine - start.machine) * 1000, wallMs: end.at - start.at };
  };
}

/** The server processes of PostgreSQL serving `databaseUrl`'s database (its connections' backends). */
export async function postgresBackends(databaseUrl: string): Promise<number[]> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    return rows.map((row) => row.pid);
  } finally {
    await client.end();
  }
}

/** The Redis server's process id, as it reports it (same machine). */
export async function redisServerPid(url: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const match = /^process_id:(\d+)/m.exec(await redis.info('server'));
    if (!match) throw new Error('Redis INFO server has no process_id');
    return Number(match[1]);
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts `node <script>` and waits for the line on stderr that names its port (`portLine`, one
 * capture group). Fails with the process's last words if it exits or stays silent.
 */
export function startServerProcess(
  script: string,
  env: Record<string, string>,
  portLine: RegExp,
  args: readonly string[] = [],
): Promise<ServerProcess> {
  // The server logs to a file, not to a pipe this (busy) process would have to drain: on Linux a
  // write to a full pipe blocks the writer, which would measure the load generator, not the server.
  const logDir = mkdtempSync(join(tmpdir(), 'dks-bench-log-'));
  const logFile = join(logDir, 'stderr.log');
  const logFd = openSync(logFile, 'w');
  const lastWords = () => readFileSync(logFile, 'utf8').trim().slice(-600);
  return new Promise((resolve, reject) => {
    // BENCH_CPU_PROF_DIR: each server writes a V8 CPU profile there when it exits.
    const profile = process.env.BENCH_CPU_PROF_DIR
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`]
      : [];
    const child: ChildProcess = spawn(process.execPath, [...profile, script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', logFd],
    });
    closeSync(logFd);
    let started = false;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const removeLog = () => rmSync(logDir, { recursive: true, force: true });
    const fail = (message: string) => {
      clearInterval(poll);
      const words = lastWords();
      removeLog();
      reject(new Error(`${message}: ${words}`));
    };
    const deadline = Date.now() + START_TIMEOUT_MS;
    const poll = setInterval(() => {
      const match = portLine.exec(readFileSync(logFile, 'utf8'));
      if (!match) {
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          fail(`${script} did not report its port within ${START_TIMEOUT_MS} ms`);
        }
        return;
      }
      clearInterval(poll);
      started = true;
      const pid = child.pid!;
      resolve({
        pid,
        port: Number(match[1]),
        peakRssMiB: () => peakRssMiB(pid),
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(force);
          removeLog();
        },
      });
    }, 50);
    child.once('exit', (code, signal) => {
      if (!started) fail(`${script} exited (${code ?? signal}) before listening`);
      else removeLog();
    });
  });
}

// -----------------------------------------------------------------------------------------------
// Load generation: HTTP/1.1 over mTLS
// -----------------------------------------------------------------------------------------------

/** Where the load goes and who it is: the client certificate is presented on every connection. */
export interface MtlsTarget {
  readonly port: number;
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** One request, serialised once so the load loop only writes bytes. */
export function httpRequest(
  method: 'GET' | 'POST',
  path: string,
  options: { body?: string; close?: boolean } = {},
): Buffer {
  const body = options.body === undefined ? '' : options.body;
  const head = [
    `${method} ${path} HTTP/1.1`,
    'host: localhost',
    `connection: ${options.close ? 'close' : 'keep-alive'}`,
    ...(options.body === undefined
      ? []
      : ['content-type: application/json', `content-length: ${Buffer.byteLength(body)}`]),
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`);
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * A keep-alive connection with one request in flight at a time. Responses are framed by
 * content-length (every route measured here sends one); anything else fails loudly.
 */
class Connection {
  #buffer: Buffer = Buffer.alloc(0);
  #pending?: { resolve: (status: number) => void; reject: (error: Error) => void };

  constructor(readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error: Error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error('the server closed the connection')));
  }

  send(request: Buffer): Promise<number> {
    if (this.#pending) throw new Error('one request at a time per connection');
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  #fail(error: Error): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(error);
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const end = this.#buffer.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.#buffer.subarray(0, end).toString('latin1');
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) return this.#fail(new Error(`a response without content-length: ${head.split('\r\n')[0]}`));
    const total = end + HEADER_END.length + Number(length[1]);
    if (this.#buffer.length < total) return;
    const status = Number(head.slice(9, 12));
    this.#buffer = this.#buffer.subarray(total);
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve(status);
  }
}

/** Parsed once per target, so the load loop does not re-read PEM for every connection. */
const secureContexts = new WeakMap<MtlsTarget, SecureContext>();

/** A new TLS connection with a full handshake (no session is offered, so none is resumed). */
export function openConnection(target: MtlsTarget): Promise<Connection> {
  let secureContext = secureContexts.get(target);
  if (!secureContext) {
    secureContext = createSecureContext({ ca: target.caPem, cert: target.certPem, key: target.keyPem });
    secureContexts.set(target, secureContext);
  }
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: target.port, secureContext, rejectUnauthorized: true });
    socket.once('secureConnect', () => {
      socket.setNoDelay(true);
      socket.off('error', reject);
      resolve(new Connection(socket));
    });
    socket.once('error', reject);
  });
}

export function measurement(latencies: number[], timedNs: number, failures: number): Measurement {
  return { count: latencies.length, timedNs, latenciesNs: Float64Array.from(latencies), failures };
}

const ok = (status: number) => status >= 200 && status < 300;

/** `connections` keep-alive connections, each sending the next request as soon as the last is answered. */
export async function closedLoop(
  target: MtlsTarget,
  request: Buffer,
  options: { connections: number; durationMs: number },
): Promise<Measurement> {
  const connections = await Promise.all(Array.from({ length: options.connections }, () => openConnection(target)));
  const latencies: number[] = [];
  let failures = 0;
  const started = process.hrtime.bigint();
  const deadline = performance.now() + options.durationMs;
  try {
    await Promise.all(
      connections.map(async (connection) => {
        while (performance.now() < deadline) {
          const sent = process.hrtime.bigint();
          const status = await connection.send(request);
          latencies.push(Number(process.hrtime.bigint() - sent));
          if (!ok(status)) failures++;
        }
      }),
    );
  } finally {
    for (const connection of connections) connection.close();
  }
  return measurement(latencies, Number(process.hrtime.bigint() - started), failures);
}

/**
 * Open loop: request i is due at start + i / rate, whatever the server's pace; a request waits
 * for a free keep-alive connection when all are busy. Latency runs from the due time, so a
 * server that falls behind shows it (no coordinated omission). `timedNs` runs to the last answer.
 */
export async function openLoop(
  target: MtlsTarget,
  requests: readonly Buffer[],
  options: { ratePerSecond: number; connections: number; expectStatus: number },
): Promise<Measurement> {
  const idle = await Promise.all(Array.from({ length: options.connections }, () => openConnection(target)));
  const all = [...idle];
  const waiting: Array<{ request: Buffer; dueNs: bigint }> = [];
  const latencies: number[] = [];
  let failures = 0;
  let next = 0;
  let inFlight = 0;
  const intervalNs = BigInt(Math.round(1e9 / options.ratePerSecond));
  const started = process.hrtime.bigint();
  let lastAnswer = started;

  return new Promise<Measurement>((resolve, reject) => {
    const finishIfDone = () => {
      if (next < requests.length || inFlight > 0 || waiting.length > 0) return;
      for (const connection of all) connection.close();
      resolve(measurement(latencies, Number(lastAnswer - started), failures));
    };
    const dispatch = (connection: Connection, request: Buffer, dueNs: bigint) => {
      inFlight++;
      connection.send(request).then(
        (status) => {
          lastAnswer = process.hrtime.bigint();
          latencies.push(Number(lastAnswer - dueNs));
          if (status !== options.expectStatus) failures++;
          inFlight--;
          const queued = waiting.shift();
          if (queued) dispatch(connection, queued.request, queued.dueNs);
          else idle.push(connection);
          finishIfDone();
        },
        (error: Error) => {
          for (const c of all) c.close();
          reject(error);
        },
      );
    };
    const tick = () => {
      const now = process.hrtime.bigint();
      while (next < requests.length && started + BigInt(next) * intervalNs <= now) {
        const dueNs = started + BigInt(next) * intervalNs;
        const request = requests[next++];
        const connection = idle.pop();
        if (connection) dispatch(connection, request, dueNs);
        else waiting.push({ request, dueNs });
      }
      if (next < requests.length) setTimeout(tick, 1);
      else finishIfDone();
    };
    tick();
  });
}

/** `concurrency` clients, each opening a new mTLS connection per request (full handshake, `connection: close`). */
export async function handshakeLoop(
  target: MtlsTarget,
  request: Buffer,
  options: { concurrency: number; durationMs: number },
): Promise<Measurement> {
  const latencies: number[] = [];
  let failures = 0;
  const started = process.hrtime.bigint();
  const deadline = performance.now() + options.durationMs;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < deadline) {
        const begun = process.hrtime.bigint();
        const connection = await openConnection(target);
        try {
          if (!ok(await connection.send(request))) failures++;
        } finally {
          connection.close();
        }
        latencies.push(Number(process.hrtime.bigint() - begun));
      }
    }),
  );
  return measurement(latencies, Number(process.hrtime.bigint() - started), failures);
}
