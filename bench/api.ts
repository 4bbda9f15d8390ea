import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createECDH, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { loadConfig, type AppConfig } from '../src/config/config.js';
import { connectDatabase } from '../src/app/dependencies.js';
import { KeyLifecycleService } from '../src/keys/key-lifecycle.service.js';
import { KeyRegistrationService } from '../src/keys/key-registration.service.js';
import { KeysCoreModule } from '../src/keys/keys.module.js';
import { PairingCoreModule } from '../src/pairing/pairing.module.js';
import { PairingService } from '../src/pairing/pairing.service.js';
import '../src/pki/certificate-issuer.js';
import { EndpointChainVerifier } from '../src/pki/endpoint-chain.js';
import { SimulatorPki } from '../src/sim/sim-pki.js';
import { VehiclesModule } from '../src/vehicles/vehicles.module.js';
import { VehiclesService } from '../src/vehicles/vehicles.service.js';
import { recordingDataSource, replay, servicesContext, type RecordedQuery } from './api-database.js';
import {
  benchContext,
  closedLoop,
  createDatabase,
  handshakeLoop,
  httpRequest,
  measureCpu,
  measurement,
  openLoop,
  postgresBackends,
  prepareBenchSystem,
  runCleanup,
  startServerProcess,
  type BenchDatabase,
  type BenchPki,
  type MtlsTarget,
  type ServerProcess,
} from './api-system.js';
import {
  concatenateMeasurements,
  printReport,
  progress,
  progressSummary,
  quickRun,
  round,
  summariseLatencies,
  targetBound,
  type BenchResult,
  type LatencySummary,
  type Measurement,
} from './report.js';

/**
 * The HTTP API under load, next to plain Fastify and raw `pg` measured in the same run: key
 * registration at a fixed arrival rate, keep-alive heartbeats, new mTLS handshakes, endpoint
 * chain verification, the database hot paths and the api process's peak RSS. The api process
 * (`dist/src/main.js`) and the plain Fastify floor (`dist/bench/api-floor-server.js`) run as
 * their own processes on a fresh, migrated database and a dev PKI in a temporary folder; this
 * process generates the load. `npm run bench:api [-- --json] [-- --quick]`.
 */

const RATE = 300;
const TARGETS = { registerP99Ms: 25, heartbeatShare: 0.6, databaseShare: 0.8, sustainedShare: 0.99 } as const;
const ROUNDS = quickRun ? 1 : 3;
const PLAN = quickRun
  ? {
      registerSeconds: 3,
      warmUpSeconds: 1,
      heartbeatMs: 1_000,
      handshakeMs: 1_000,
      chainMs: 400,
      lookups: 300,
      revokes: 200,
    }
  : {
      registerSeconds: 15,
      warmUpSeconds: 2,
      heartbeatMs: 3_000,
      handshakeMs: 3_000,
      chainMs: 1_000,
      lookups: 1_000,
      revokes: 300,
    };
const KEEP_ALIVE_CONNECTIONS = 16;
const HANDSHAKE_CONCURRENCY = 8;
const OPEN_LOOP_CONNECTIONS = 32;
const PARTNER = 'device-oem';

/** Runs each labelled measurement once per round, interleaved, so noise weighs on all alike. */
async function interleaved<K extends string>(
  runs: Record<K, () => Promise<Measurement>>,
  rounds: number,
): Promise<Record<K, LatencySummary>> {
  const taken = Object.fromEntries(Object.keys(runs).map((key) => [key, [] as Measurement[]])) as Record<
    K,
    Measurement[]
  >;
  for (let i = 0; i < rounds; i++) {
    for (const key of Object.keys(runs) as K[]) taken[key].push(await runs[key]());
  }
  return Object.fromEntries(
    Object.keys(runs).map((key) => [
      key,
      progressSummary(key, summariseLatencies([concatenateMeasurements(taken[key as K])])),
    ]),
  ) as Record<K, LatencySummary>;
}

/** Times `operation` on each item, one after another. */
async function timeEach<T>(items: readonly T[], operation: (item: T) => unknown): Promise<Measurement> {
  const latencies: number[] = [];
  for (const item of items) {
    const started = process.hrtime.bigint();
    await operation(item);
    latencies.push(Number(process.hrtime.bigint() - started));
  }
  return measurement(
    latencies,
    latencies.reduce((sum, ns) => sum + ns, 0),
    0,
  );
}

/** Runs `operation` back to back for `durationMs`. */
async function timeFor(durationMs: number, operation: () => unknown): Promise<Measurement> {
  const latencies: number[] = [];
  const deadline = performance.now() + durationMs;
  while (performance.now() < deadline) {
    const started = process.hrtime.bigint();
    await operation();
    latencies.push(Number(process.hrtime.bigint() - started));
  }
  return measurement(
    latencies,
    latencies.reduce((sum, ns) => sum + ns, 0),
    0,
  );
}

// -----------------------------------------------------------------------------------------------
// Set-up: vehicles with an open owner pairing session each, and one registration body per vehicle
// -----------------------------------------------------------------------------------------------

/** Provisions `count` vehicles and opens an owner pairing session on each, through the project's services. */
async function provisionFleet(config: AppConfig, count: number): Promise<string[]> {
  const dataSource = await connectDatabase(config, { applicationName: 'dks-bench-setup', poolSize: 8 });
  const app = await servicesContext({ config, dataSource }, [VehiclesModule, PairingCoreModule]);
  try {
    const vehicles = app.get(VehiclesService);
    const pairing = app.get(PairingService);
    const publicKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    const identifiers = new Array<string>(count);
    let next = 0;
    const run = randomBytes(2).toString('hex').toUpperCase().replace(/[IOQ]/g, 'A');
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < count) {
          const index = next++;
          const vin = `BN${run}${String(index).padStart(11, '0')}`;
          const vehicle = await vehicles.provision(
            { vin, telematicsUrl: 'https://127.0.0.1:9/commands', publicKey },
            benchContext(),
          );
          await pairing.start(vin, undefined, benchContext());
          identifiers[index] = vehicle.vehicleIdentifier;
          if ((index + 1) % 1_000 === 0) progress(`    ${index + 1} of ${count}`);
        }
      }),
    );
    return identifiers;
  } finally {
    await app.close();
    await dataSource.destroy();
  }
}

/** `POST /partner/v1/keys` bodies as the Device OEM sends them: a fresh endpoint key and its chain of §2. */
async function registrationRequests(pki: BenchPki, vehicleIdentifiers: readonly string[]): Promise<Buffer[]> {
  const instanceCa = (await SimulatorPki.create(pki.set)).instanceCa();
  return vehicleIdentifiers.map((vehicleId) => {
    const ecdh = createECDH('prime256v1');
    const chain = instanceCa.issueEndpointChain({
      endpointPublicKey: ecdh.generateKeys(),
      vehicleIdentifier: Buffer.from(vehicleId, 'hex'),
      role: 'owner',
    });
    const body = JSON.stringify({
      vehicleId,
      role: 'owner',
      certificateChain: chain.map((der) => der.toString('base64')),
    });
    return httpRequest('POST', '/partner/v1/keys', { body });
  });
}

// -----------------------------------------------------------------------------------------------
// Certificate chain verification, in this process
// -----------------------------------------------------------------------------------------------

async function chainVerification(pki: BenchPki, chain: readonly Buffer[]) {
  const verifier = new EndpointChainVerifier(pki.set.vehicleOemRootCert);
  const rootDer = Buffer.from(new X509Certificate(pki.set.vehicleOemRootCert).raw);
  const bareNode = () => {
    const [endpoint, instance, deviceOem] = chain.map((der) => new X509Certificate(der));
    const root = new X509Certificate(rootDer);
    for (const [child, issuer] of [
      [endpoint, instance],
      [instance, deviceOem],
      [deviceOem, root],
    ] as const) {
      if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey)) throw new Error('chain refused');
    }
  };
  const peculiar = async () => {
    const [endpoint, instance, deviceOem] = chain.map((der) => new x509.X509Certificate(der));
    const root = new x509.X509Certificate(rootDer);
    for (const [child, issuer] of [
      [endpoint, instance],
      [instance, deviceOem],
      [deviceOem, root],
    ] as const) {
      if (!(await child.verify({ publicKey: issuer.publicKey, date: new Date() }))) throw new Error('chain refused');
    }
  };
  progress('  … endpoint chain verification (this process)');
  return interleaved(
    {
      'EndpointChainVerifier (request path)': () => timeFor(PLAN.chainMs, () => verifier.verify(chain)),
      'bare node:crypto X509Certificate': () => timeFor(PLAN.chainMs, bareNode),
      '@peculiar/x509': () => timeFor(PLAN.chainMs, peculiar),
    },
    ROUNDS,
  );
}

// -----------------------------------------------------------------------------------------------
// Database hot paths: the project's services vs raw pg sending the same statements
// -----------------------------------------------------------------------------------------------

async function databasePaths(config: AppConfig, source: BenchDatabase, copy: BenchDatabase) {
  const recorder: { current?: RecordedQuery[] } = {};
  const dataSource = await recordingDataSource(source.url, recorder);
  const app = await servicesContext({ config, dataSource }, [KeysCoreModule]);
  const pool = new Pool({ connectionString: copy.url, max: 10, application_name: 'dks-bench-raw' });
  try {
    const registration = app.get(KeyRegistrationService);
    const lifecycle = app.get(KeyLifecycleService);
    const keys = (
      await dataSource.query<Array<{ key: string }>>(
        `SELECT key_identifier AS key FROM digital_keys WHERE state = 'pending' ORDER BY created_at`,
      )
    ).map((row) => row.key);
    const needed = ROUNDS * PLAN.revokes;
    if (keys.length < needed) throw new Error(`only ${keys.length} registered keys to revoke, ${needed} needed`);
    const recorded = async (operation: () => Promise<unknown>): Promise<RecordedQuery[]> => {
      const statements: RecordedQuery[] = [];
      recorder.current = statements;
      try {
        await operation();
      } finally {
        recorder.current = undefined;
      }
      return statements;
    };
    const path = async (
      label: string,
      batches: (round: number) => readonly string[],
      operation: (key: string) => Promise<unknown>,
    ) => {
      progress(`  … ${label}`);
      const service: Measurement[] = [];
      const raw: Measurement[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const statements: RecordedQuery[][] = [];
        service.push(
          await timeEach(batches(round), async (key) => statements.push(await recorded(() => operation(key)))),
        );
        raw.push(await timeEach(statements, (sql) => replay(pool, sql)));
      }
      return {
        service: progressSummary('services (TypeORM)', summariseLatencies([concatenateMeasurements(service)])),
        raw: progressSummary('raw pg, same statements', summariseLatencies([concatenateMeasurements(raw)])),
      };
    };
    const lookup = await path(
      'key lookup (KeyRegistrationService.get, as GET /partner/v1/keys/{keyId})',
      (round) => Array.from({ length: PLAN.lookups }, (_, i) => keys[(round * PLAN.lookups + i) % keys.length]),
      (key) => registration.get(PARTNER, key),
    );
    const revoke = await path(
      'revoke transaction (KeyLifecycleService.apply terminate, as POST /partner/v1/keys/{keyId}/terminate)',
      (round) => keys.slice(round * PLAN.revokes, (round + 1) * PLAN.revokes),
      (key) => lifecycle.apply(key, 'terminate', benchContext(), { partner: PARTNER }, 'benchmark'),
    );
    return { lookup, revoke };
  } finally {
    await pool.end();
    await app.close();
    await dataSource.destroy();
  }
}

// -----------------------------------------------------------------------------------------------
// Main
// -----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  progress(`api benchmark: node ${process.version}, ${cpus().length} cores${quickRun ? ' (quick)' : ''}`);
  const cleanup: Array<() => Promise<void> | void> = [];
  const results: BenchResult[] = [];
  const rows: string[][] = [];
  const row = (result: BenchResult, status = result.ok === null ? 'info' : result.ok ? 'ok' : 'MISSED') => {
    results.push(result);
    rows.push([
      result.name,
      `${result.value} ${result.unit}`,
      `${result.floor} ${result.unit}`,
      result.floor ? `${((100 * result.value) / result.floor).toFixed(0)}%` : '—',
      targetBound(result),
      status,
    ]);
  };
  try {
    progress('  … dev PKI and a fresh database (migrated by dist/src/database/migrate.js)');
    const { pki, database, env } = await prepareBenchSystem(cleanup);
    const config = loadConfig({ ...process.env, ...env, PAIRING_SCRYPT_N: '1024' });

    const warmUpCount = RATE * PLAN.warmUpSeconds;
    const measuredCount = RATE * PLAN.registerSeconds;
    progress(`  … ${warmUpCount + measuredCount} vehicles with an open owner pairing session (set-up, untimed)`);
    const requests = await registrationRequests(pki, await provisionFleet(config, warmUpCount + measuredCount));
    const warmUp = requests.slice(0, warmUpCount);
    const measured = requests.slice(warmUpCount);

    progress('  … starting the api process and the plain Fastify floor');
    const api = await startServerProcess(
      join(__dirname, '../src/main.js'),
      env,
      /mTLS listener on https:\/\/[^\s]+:(\d+)/,
    );
    let apiRunning = true;
    cleanup.push(() => (apiRunning ? api.stop() : undefined));
    const floor: ServerProcess = await startServerProcess(
      join(__dirname, 'api-floor-server.js'),
      {},
      /listening on port (\d+)/,
      [pki.dir],
    );
    cleanup.push(() => floor.stop());
    const targets = new Map<ServerProcess, MtlsTarget>(
      [api, floor].map((server) => [
        server,
        {
          port: server.port,
          caPem: pki.set.vehicleOemRootCert,
          certPem: pki.set.deviceOemClientCert,
          keyPem: pki.set.deviceOemClientKey,
        },
      ]),
    );
    const target = (server: ServerProcess): MtlsTarget => targets.get(server)!;
    const keepAlive = (server: ServerProcess, path: string) => () =>
      closedLoop(target(server), httpRequest('GET', path), {
        connections: KEEP_ALIVE_CONNECTIONS,
        durationMs: PLAN.heartbeatMs,
      });

    progress(`  … warm-up`);
    await keepAlive(api, '/partner/v1/heartbeat')();
    await keepAlive(floor, '/trivial')();

    progress(`  … keep-alive GET, ${KEEP_ALIVE_CONNECTIONS} connections, closed loop`);
    const heartbeat = await interleaved(
      {
        'api GET /partner/v1/heartbeat': keepAlive(api, '/partner/v1/heartbeat'),
        'plain Fastify, trivial JSON': keepAlive(floor, '/trivial'),
        'plain Fastify, identity per request': keepAlive(floor, '/identity/per-request'),
        'plain Fastify, identity per socket': keepAlive(floor, '/identity/per-socket'),
      },
      ROUNDS,
    );

    progress(`  … new mTLS handshakes, ${HANDSHAKE_CONCURRENCY} clients, one request per connection, no resumption`);
    const handshake = (server: ServerProcess, path: string) => () =>
      handshakeLoop(target(server), httpRequest('GET', path, { close: true }), {
        concurrency: HANDSHAKE_CONCURRENCY,
        durationMs: PLAN.handshakeMs,
      });
    const handshakes = await interleaved(
      { 'api heartbeat': handshake(api, '/partner/v1/heartbeat'), 'plain Fastify': handshake(floor, '/trivial') },
      ROUNDS,
    );

    progress(`  … POST /partner/v1/keys at ${RATE}/s (open loop), floor first with the same bodies`);
    const register = async (server: ServerProcess, label: string, expectStatus: number) => {
      const options = { ratePerSecond: RATE, connections: OPEN_LOOP_CONNECTIONS, expectStatus };
      await openLoop(target(server), warmUp, options);
      const endCpu = await measureCpu({
        server: [server.pid],
        PostgreSQL: () => postgresBackends(config.databaseUrl),
        'load generator': [process.pid],
      });
      const summary = progressSummary(label, summariseLatencies([await openLoop(target(server), measured, options)]));
      const cpu = await endCpu();
      const perRequest = (ms: number) => ms / measured.length;
      progress(
        `    CPU per request: server ${perRequest(cpu.byGroup.server).toFixed(2)} ms, PostgreSQL ` +
          `${perRequest(cpu.byGroup.PostgreSQL).toFixed(2)} ms, load generator ` +
          `${perRequest(cpu.byGroup['load generator']).toFixed(2)} ms; machine ` +
          `${((100 * cpu.machineBusyMs) / (cpu.wallMs * cpus().length)).toFixed(0)} % busy`,
      );
      return { ...summary, serverCpuMs: perRequest(cpu.byGroup.server) };
    };
    const registerFloor = await register(floor, 'plain Fastify, parse + verify chain', 201);
    const registerApi = await register(api, 'api', 201);
    const apiRss = api.peakRssMiB();
    const floorRss = floor.peakRssMiB();
    progress(`    peak RSS: api ${apiRss.toFixed(1)} MiB, floor ${floorRss.toFixed(1)} MiB`);
    await api.stop();
    apiRunning = false;

    const chainDer = (
      JSON.parse(measured[0].toString('utf8').split('\r\n\r\n')[1]) as { certificateChain: string[] }
    ).certificateChain.map((entry) => Buffer.from(entry, 'base64'));
    const chains = await chainVerification(pki, chainDer);

    progress('  … a copy of the database for raw pg (CREATE DATABASE … TEMPLATE)');
    const copy = await createDatabase(database.name);
    cleanup.push(() => copy.drop());
    const db = await databasePaths(config, database, copy);

    // --- results ---
    /** One figure; `digits` rounds value, floor and target alike. */
    const figure = (
      name: string,
      unit: string,
      digits: number,
      value: number,
      floor: number,
      target: number | null = null,
      ok: boolean | null = null,
    ) =>
      row({
        name,
        value: round(value, digits),
        unit,
        floor: round(floor, digits),
        target: target === null ? null : round(target, digits),
        ok,
      });
    const sustained = (summary: LatencySummary) =>
      summary.count / Math.max(PLAN.registerSeconds, summary.count / summary.rate);
    const registerValid = registerApi.failures === 0 && registerApi.count === measuredCount;
    const offered = `at ${RATE}/s offered`;
    const sustainedTarget = RATE * TARGETS.sustainedShare;
    figure(
      `POST /partner/v1/keys throughput ${offered}`,
      'req/s',
      1,
      sustained(registerApi),
      sustained(registerFloor),
      sustainedTarget,
      registerValid && sustained(registerApi) >= sustainedTarget,
    );
    figure(`POST /partner/v1/keys p50 ${offered}`, 'ms', 2, registerApi.p50Ms, registerFloor.p50Ms);
    figure(
      `POST /partner/v1/keys p99 ${offered}`,
      'ms',
      2,
      registerApi.p99Ms,
      registerFloor.p99Ms,
      TARGETS.registerP99Ms,
      registerValid && registerApi.p99Ms <= TARGETS.registerP99Ms,
    );
    figure(`api CPU per POST /partner/v1/keys ${offered}`, 'ms', 2, registerApi.serverCpuMs, registerFloor.serverCpuMs);
    figure('api peak RSS (VmHWM) after the register-key load', 'MiB', 1, apiRss, floorRss);
    const heartbeatApi = heartbeat['api GET /partner/v1/heartbeat'];
    const trivial = heartbeat['plain Fastify, trivial JSON'];
    const heartbeatTarget = trivial.rate * TARGETS.heartbeatShare;
    figure(
      'GET /partner/v1/heartbeat keep-alive (identity cached per socket)',
      'req/s',
      0,
      heartbeatApi.rate,
      trivial.rate,
      heartbeatTarget,
      heartbeatApi.failures === 0 && heartbeatApi.rate >= heartbeatTarget,
    );
    for (const variant of ['per request', 'per socket'] as const) {
      figure(
        `plain Fastify heartbeat, client identity parsed ${variant}`,
        'req/s',
        0,
        heartbeat[`plain Fastify, identity ${variant}`].rate,
        trivial.rate,
      );
    }
    figure(
      'new mTLS handshakes while serving (no keep-alive, no resumption)',
      'handshakes/s',
      0,
      handshakes['api heartbeat'].rate,
      handshakes['plain Fastify'].rate,
    );
    const bare = chains['bare node:crypto X509Certificate'].rate;
    const peculiar = chains['@peculiar/x509'].rate;
    figure(
      'endpoint chain verification, EndpointChainVerifier (node:crypto; the request path)',
      'chains/s',
      0,
      chains['EndpointChainVerifier (request path)'].rate,
      bare,
    );
    figure(
      'chain verification, node:crypto X509Certificate (floor: @peculiar/x509 as the peer)',
      'chains/s',
      0,
      bare,
      peculiar,
      peculiar,
      bare > peculiar,
    );
    for (const [label, paths] of [
      ['key lookup', db.lookup],
      ['revoke transaction', db.revoke],
    ] as const) {
      const databaseTarget = paths.raw.rate * TARGETS.databaseShare;
      figure(
        `PostgreSQL ${label}, services (floor: raw pg, same statements)`,
        'ops/s',
        0,
        paths.service.rate,
        paths.raw.rate,
        databaseTarget,
        paths.service.rate >= databaseTarget,
      );
      figure(`PostgreSQL ${label} p50, services`, 'ms', 3, paths.service.p50Ms, paths.raw.p50Ms);
    }
  } finally {
    progress('  … cleaning up');
    await runCleanup(cleanup);
  }

  printReport(results, ['figure', 'value', 'floor / peer', 'of floor', 'target', 'status'], rows, [
    `Servers: the api process (node dist/src/main.js) and plain Fastify with the same mTLS settings, each its own`,
    'process; this process generates the load over real mTLS (Device OEM client certificate, rejectUnauthorized).',
    `POST /partner/v1/keys: a fresh endpoint key and chain per request for a vehicle with an open owner pairing`,
    `session (bodies built before the timed window); open loop at ${RATE}/s, latency from each request's due time;`,
    `sustained = answered ÷ max(window, time to the last answer), target ≥ ${TARGETS.sustainedShare * 100} % of the offered rate. Floor: plain`,
    'Fastify parsing the body and verifying the chain with node:crypto X509Certificate.',
    `Keep-alive: ${KEEP_ALIVE_CONNECTIONS} connections, closed loop; target ≥ ${TARGETS.heartbeatShare * 100} % of plain Fastify's trivial JSON route.`,
    'The api guard maps the client certificate to a principal once per TLS connection; the plain Fastify rows',
    'show what parsing it on every request instead costs.',
    `Handshakes: ${HANDSHAKE_CONCURRENCY} clients, each request on a new TLS connection (no session offered, so none resumed).`,
    'PostgreSQL: the services the api uses (TypeORM) against raw pg sending the statements they sent, in the same',
    `order on one connection, to a copy of the database; target ≥ ${TARGETS.databaseShare * 100} % of raw. Rounds alternate to share the noise.`,
  ]);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:api: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
