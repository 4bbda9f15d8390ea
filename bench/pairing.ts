import 'reflect-metadata';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import type { PkiSet } from '../src/pki/dev-pki.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES } from '../src/protocol/entitlements.js';
import { CONFIDENTIAL_MAILBOX_SIZE, PRIVATE_MAILBOX_SIZE } from '../src/protocol/mailbox.js';
import { encodeEndpointChain, encodePairingData, splitWriteDataBlocks } from '../src/protocol/pairing.js';
import { deriveVerifierFromPassword, PAIRING_SCRYPT_COST } from '../src/protocol/spake2plus-password.js';
import type { PairingVerifier } from '../src/protocol/telematics-messages.js';
import { NfcLink } from '../src/sim/nfc/nfc-link.js';
import {
  derivePairingSecretsWithScrypt,
  type PairingSecretsDerivation,
} from '../src/sim/secure-element/framework-applet.js';
import { SoftwareSecureElement } from '../src/sim/secure-element/software-secure-element.js';
import { SimulatorPki } from '../src/sim/sim-pki.js';
import { PairingFloor } from './pairing-floor.js';
import {
  concatenateMeasurements,
  printReport,
  progress,
  progressSummary,
  quickRun,
  round,
  summariseLatencies,
  type BenchResult,
  type LatencySummary,
  type Measurement,
  runInWorker,
  serveWorkerTask,
} from './report.js';

/**
 * Owner pairings per second and latency with both sides simulated (§3.2–3.4): SELECT → SPAKE2+
 * REQUEST/VERIFY → pairing secure channel → WRITE DATA → key generation and endpoint
 * certificate in the SE → GET DATA (61xx chaining) → chain verification by the car → pending
 * owner → OP CONTROL FLOW, over a zero-latency in-memory NFC link. scrypt at the production
 * cost is measured apart from the SPAKE2+ part. The floor is the bare library work of the same
 * pairing (noble point multiplications, node:crypto SHA-256/HKDF/AES/ECDSA/X.509), same run.
 * `npm run bench:pairing [-- --json] [-- --quick]`; progress on stderr, the table (or only the
 * JSON results) on stdout.
 */

/** `spake2`: the device's scrypt output precomputed off the timed path; `with-scrypt`: scrypt in the APDU. */
type Mode = 'spake2' | 'with-scrypt' | 'scrypt-only';
type Path = 'measured' | 'floor';

interface Task {
  readonly mode: Mode;
  readonly path: Path;
  readonly durationMs: number;
  readonly pki: PkiSet;
  readonly verifier: PairingVerifier;
  readonly secrets: { readonly w0: string; readonly w1: string };
}

const PASSWORD = '20260517';
const TARGETS = { pairingsPerSecond: 30, p99Ms: 100 } as const;
const WARM_UP_MS = 800;
/** Alternating floor / measured rounds per single-thread configuration. */
const ROUNDS = quickRun ? 1 : 4;

// -----------------------------------------------------------------------------------------------
// One measurement, in whichever thread runs it
// -----------------------------------------------------------------------------------------------

async function measure(task: Task): Promise<Measurement> {
  const pki = await SimulatorPki.create(task.pki);
  const car = await pki.pairableVehicle({ eventLogCapacity: 1_024 });
  const precomputed: PairingSecretsDerivation = () => ({
    w0: Buffer.from(task.secrets.w0, 'hex'),
    w1: Buffer.from(task.secrets.w1, 'hex'),
  });
  let scryptNs = 0;
  const timedScrypt: PairingSecretsDerivation = (password, salt, cost) => {
    const started = process.hrtime.bigint();
    try {
      return derivePairingSecretsWithScrypt(password, salt, cost);
    } finally {
      scryptNs = Number(process.hrtime.bigint() - started);
    }
  };
  const se = new SoftwareSecureElement({
    instanceCa: pki.instanceCa(),
    derivePairingSecrets: task.mode === 'spake2' ? precomputed : timedScrypt,
  });
  const link = new NfcLink(se, { timeoutMs: 0 });
  const pairOnce = async (): Promise<boolean> => {
    car.installPairingVerifier(task.verifier);
    se.enterPairingPassword(PASSWORD);
    const event = await car.pairingReader.pair(link);
    link.loseField();
    return event.result === 'paired';
  };

  const latencies: number[] = [];
  let timedNs = 0;
  let failures = 0;
  const deadline = performance.now() + task.durationMs;
  if (task.path === 'floor') {
    // The material of one real pairing, so the floor handles the same sizes.
    if (!(await pairOnce())) throw new Error('the set-up pairing failed');
    const keyId = se.keys()[0].keyId;
    const chain = se.endpointCertificateChain(keyId) ?? [];
    const vehicleCertificate = Buffer.from(new X509Certificate(car.vehicleCertificatePem ?? '').raw);
    const vehicleOemRoot = Buffer.from(new X509Certificate(pki.set.vehicleOemRootCert).raw);
    const stream = encodePairingData({
      vehicleCertificate,
      vehicleOemRoot,
      vehicleIdentifier: car.vehicleIdentifier,
      options: {
        privateMailboxSize: PRIVATE_MAILBOX_SIZE,
        confidentialMailboxSize: CONFIDENTIAL_MAILBOX_SIZE,
        entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.OWNER),
      },
    });
    const floor = new PairingFloor({
      w0: Buffer.from(task.secrets.w0, 'hex'),
      w1: Buffer.from(task.secrets.w1, 'hex'),
      L: Buffer.from(task.verifier.L, 'hex'),
      vehicleCertificate,
      vehicleOemRoot,
      chain,
      instanceCaKey: createPrivateKey(pki.set.instanceCaKey),
      writeBlocks: splitWriteDataBlocks(stream).map((block) => block.length),
      getDataLength: encodeEndpointChain([chain[0], chain[1], chain[2]]).length,
    });
    const cost = { N: task.verifier.scryptN, r: task.verifier.scryptR, p: task.verifier.scryptP };
    while (performance.now() < deadline) {
      const started = process.hrtime.bigint();
      if (task.mode !== 'scrypt-only') floor.run();
      if (task.mode !== 'spake2') PairingFloor.scrypt(cost);
      const elapsed = Number(process.hrtime.bigint() - started);
      latencies.push(elapsed);
      timedNs += elapsed;
    }
  } else {
    while (performance.now() < deadline) {
      const started = process.hrtime.bigint();
      const paired = await pairOnce();
      const elapsed = Number(process.hrtime.bigint() - started);
      const sample = task.mode === 'scrypt-only' ? scryptNs : elapsed;
      latencies.push(sample);
      timedNs += sample;
      if (!paired) failures++;
    }
  }
  return { count: latencies.length, timedNs, latenciesNs: Float64Array.from(latencies), failures };
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

/**
 * Floor and measured path of one configuration. In one thread they alternate in rounds, so a
 * noisy neighbour on a shared machine weighs on both alike; worker threads run one round.
 */
async function compare(
  base: Omit<Task, 'path' | 'durationMs'>,
  threads: number,
  floorMs: number,
  measuredMs: number,
): Promise<{ floor: LatencySummary; measured: LatencySummary }> {
  progress(`  … ${base.mode} (${threads} thread${threads > 1 ? 's' : ''})`);
  if (threads > 1) {
    const inWorkers = (path: Path, durationMs: number) =>
      Promise.all(Array.from({ length: threads }, () => inWorker({ ...base, path, durationMs })));
    return {
      floor: progressSummary('floor', summariseLatencies(await inWorkers('floor', floorMs))),
      measured: progressSummary('measured', summariseLatencies(await inWorkers('measured', measuredMs))),
    };
  }
  const floors: Measurement[] = [];
  const measurements: Measurement[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    floors.push(await measure({ ...base, path: 'floor', durationMs: floorMs / ROUNDS }));
    measurements.push(await measure({ ...base, path: 'measured', durationMs: measuredMs / ROUNDS }));
  }
  return {
    floor: progressSummary('floor', summariseLatencies([concatenateMeasurements(floors)])),
    measured: progressSummary('measured', summariseLatencies([concatenateMeasurements(measurements)])),
  };
}

async function main(): Promise<void> {
  const measuredMs = quickRun ? 800 : 4_000;
  const floorMs = quickRun ? 500 : 3_000;
  const workers = Math.min(2, availableParallelism());
  progress(`pairing benchmark: node ${process.version}, ${availableParallelism()} cores`);
  const pki = await SimulatorPki.create();
  // The session's verifier at the production cost, derived once (the server's work, untimed).
  const salt = randomBytes(16);
  const derived = await deriveVerifierFromPassword(PASSWORD, salt, PAIRING_SCRYPT_COST);
  const base = {
    pki: pki.set,
    verifier: {
      pairingSessionId: 'bench',
      w0: derived.w0.toString('hex'),
      L: derived.L.toString('hex'),
      salt: salt.toString('hex'),
      scryptN: PAIRING_SCRYPT_COST.N,
      scryptR: PAIRING_SCRYPT_COST.r,
      scryptP: PAIRING_SCRYPT_COST.p,
    },
    secrets: { w0: derived.w0.toString('hex'), w1: derived.w1.toString('hex') },
  };
  progress('  … warm-up');
  await measure({ ...base, mode: 'spake2', path: 'measured', durationMs: WARM_UP_MS });
  await measure({ ...base, mode: 'spake2', path: 'floor', durationMs: 300 });

  const results: BenchResult[] = [];
  const rows: string[][] = [];
  const cost = `N=${PAIRING_SCRYPT_COST.N}, r=${PAIRING_SCRYPT_COST.r}, p=${PAIRING_SCRYPT_COST.p}`;
  const configurations: { mode: Mode; threads: number; label: string; targeted: boolean }[] = [
    { mode: 'spake2', threads: 1, label: 'SPAKE2+ part, 1 thread', targeted: true },
    { mode: 'spake2', threads: workers, label: `SPAKE2+ part, ${workers} worker threads`, targeted: true },
    { mode: 'scrypt-only', threads: 1, label: `scrypt alone (${cost}), 1 thread`, targeted: false },
    { mode: 'with-scrypt', threads: 1, label: `complete incl. scrypt (${cost}), 1 thread`, targeted: false },
  ];
  for (const config of configurations) {
    const { floor, measured } = await compare({ ...base, mode: config.mode }, config.threads, floorMs, measuredMs);
    const valid = measured.failures === 0;
    const rateOk = valid && measured.rate >= TARGETS.pairingsPerSecond;
    const p99Ok = valid && measured.p99Ms <= TARGETS.p99Ms;
    const unit = config.mode === 'scrypt-only' ? 'derivations/s' : 'pairings/s';
    results.push(
      {
        name: `${unit === 'pairings/s' ? 'pairings/s' : 'scrypt derivations/s'} (${config.label})`,
        value: round(measured.rate, 1),
        unit,
        floor: round(floor.rate, 1),
        target: config.targeted ? TARGETS.pairingsPerSecond : null,
        ok: config.targeted ? rateOk : null,
      },
      {
        name: `p50 latency (${config.label})`,
        value: round(measured.p50Ms, 2),
        unit: 'ms',
        floor: round(floor.p50Ms, 2),
        target: null,
        ok: null,
      },
      {
        name: `p99 latency (${config.label})`,
        value: round(measured.p99Ms, 2),
        unit: 'ms',
        floor: round(floor.p99Ms, 2),
        target: config.targeted ? TARGETS.p99Ms : null,
        ok: config.targeted ? p99Ok : null,
      },
    );
    rows.push([
      config.label,
      measured.rate.toFixed(1),
      floor.rate.toFixed(1),
      `${((100 * measured.rate) / floor.rate).toFixed(0)}%`,
      measured.p50Ms.toFixed(2),
      measured.p99Ms.toFixed(2),
      floor.p99Ms.toFixed(2),
      config.targeted ? `≥${TARGETS.pairingsPerSecond}/s, p99≤${TARGETS.p99Ms}ms` : '—',
      config.targeted ? (rateOk && p99Ok ? 'ok' : valid ? 'MISSED' : 'FAILED') : valid ? 'info' : 'FAILED',
      String(measured.count),
    ]);
  }

  printReport(
    results,
    ['configuration', 'per s', 'floor/s', 'of floor', 'p50 ms', 'p99 ms', 'floor p99', 'target', 'status', 'samples'],
    rows,
    [
      'One pairing = SELECT, SPAKE2+ REQUEST and VERIFY, WRITE DATA (vehicle certificate, root, identifier, options),',
      'endpoint key generation and certificate inside the SE, GET DATA with 61xx chaining, chain verification by the car,',
      'pending owner, OP CONTROL FLOW; car and software SE in one process over a zero-latency in-memory NFC link.',
      'Every pairing is checked (the car logs `paired`).',
      'SPAKE2+ part: the device-side scrypt output is precomputed off the timed path (the car only ever holds w0 and L).',
      `scrypt alone: the device's derivation inside SPAKE2+ REQUEST at the production cost (${cost}); floor: bare scryptSync.`,
      `worker threads: ${workers} independent car/phone pairs side by side; the rate is the sum of the threads' rates.`,
      'floor: the bare library work of the same pairing (noble point multiplications; node:crypto SHA-256, HKDF,',
      'AES-CBC-MAC, key generation, ECDSA, X.509 parse and verify), measured in the same run.',
    ],
  );
}

if (isMainThread) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
