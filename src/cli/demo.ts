import 'reflect-metadata';
import { eventually } from '../sim/world/http-json.js';
import { CliError, formatTable, parseArguments } from './cli-framework.js';
import { startDemoStack } from './demo-stack.js';
import { Stack, describeTap, randomVin, stackOptions, type CarView, type KeyView } from './stack.js';

/** One line of the demo: what happened, who decided, how long it took, and whether it was as expected. */
interface StepResult {
  step: string;
  outcome: string;
  decidedBy: string;
  ms: number;
  ok: boolean;
  failed: string[];
}

interface StepReport {
  outcome: string;
  /** Each expectation with what it says; a false one fails the step. */
  expect: Array<[boolean, string]>;
}

const USAGE = `usage: npm run demo [-- --admin-url <url>] [--sim-url <url>] [--token <jwt>]

Runs the whole story against a running server and simulator, or starts them (api, worker and
simulator as child processes, on the demo's own database DEMO_DATABASE_URL, default
digital_key_demo, recreated on every run, and its own simulator state file in DEMO_DIR,
default .dev/demo). Exits 0 only when every expectation held.`;

const WAIT_MS = 30_000;

class Demo {
  readonly results: StepResult[] = [];

  constructor(
    private readonly out: (line: string) => void,
    private readonly total: number,
  ) {}

  /** Runs one step; an exception ends the demo (later steps build on it), a failed expectation does not. */
  async step(step: string, decidedBy: string, action: () => Promise<StepReport>): Promise<void> {
    const started = performance.now();
    const number = `[${String(this.results.length + 1).padStart(2)}/${this.total}]`;
    let report: StepReport;
    try {
      report = await action();
    } catch (error) {
      const ms = Math.round(performance.now() - started);
      const message = error instanceof Error ? error.message : String(error);
      this.results.push({ step, outcome: 'error', decidedBy, ms, ok: false, failed: [message] });
      this.out(`${number} ✗ ${step}: ${message} (${ms} ms)`);
      throw new CliError(`the demo stopped at "${step}": ${message}`);
    }
    const ms = Math.round(performance.now() - started);
    const failed = report.expect.filter(([holds]) => !holds).map(([, what]) => what);
    this.results.push({ step, outcome: report.outcome, decidedBy, ms, ok: failed.length === 0, failed });
    this.out(
      `${number} ${failed.length === 0 ? '✓' : '✗'} ${step}: ${report.outcome} — decided by ${decidedBy} — ${ms} ms` +
        (failed.length > 0 ? `\n        expected: ${failed.join('; ')}` : ''),
    );
  }
}

/** Polls until `accept` holds; the last value either way. */
async function settle<T>(probe: () => Promise<T>, accept: (value: T) => boolean): Promise<{ value: T; held: boolean }> {
  let last: T = await probe();
  try {
    last = await eventually(probe, accept, { timeoutMs: WAIT_MS, intervalMs: 100 });
    return { value: last, held: true };
  } catch {
    return { value: await probe(), held: false };
  }
}

const carKey = (car: CarView, keyId: string) => car.keys.find((key) => key.keyId === keyId);
/** The story of README "Demo": every step against the real server, car and phones. */
async function story(stack: Stack, demo: Demo): Promise<void> {
  const vin = randomVin();
  let ownerPhone = '';
  let ownerKey = '';
  const friends: Array<{ name: string; profile: string; deviceId: string; keyId: string }> = [];
  const serverKey = (keyId: string): Promise<KeyView> => stack.key(keyId);

  await demo.step(`provision car ${vin}`, 'server (issues its certificate and identifier)', async () => {
    const car = await stack.provisionCar(vin);
    return {
      outcome: `vehicle identifier ${car.vehicleIdentifier}, telematics online`,
      expect: [
        [car.online, 'the car is online'],
        [car.keys.length === 0, 'the car holds no keys'],
      ],
    };
  });

  await demo.step("pair the owner's phone at the car", 'car (SPAKE2+) and server (activation)', async () => {
    ownerPhone = (await stack.createDevice('owner')).deviceId;
    const paired = await stack.pair(vin, ownerPhone);
    ownerKey = paired.keyId;
    const [server, car] = await Promise.all([serverKey(ownerKey), stack.car(vin)]);
    return {
      outcome: `owner key ${ownerKey} ${server.state} on the server, ${carKey(car, ownerKey)?.state} in the car`,
      expect: [
        [server.state === 'active', 'the server holds the owner key active'],
        [carKey(car, ownerKey)?.state === 'active', 'the car holds the owner key active'],
      ],
    };
  });

  for (const action of ['unlock', 'engine-start'] as const) {
    await demo.step(`owner taps: ${action}`, 'car', async () => {
      const tap = await stack.tap(ownerPhone, vin, action);
      return {
        outcome: describeTap(tap),
        expect: [
          [tap.allowed, 'the car grants it'],
          [tap.keyId === ownerKey, 'with the owner key'],
        ],
      };
    });
  }

  await demo.step('the car goes out of coverage', 'simulator', async () => {
    const car = await stack.setCarOnline(vin, false);
    return { outcome: 'telematics offline', expect: [[!car.online, 'the car is offline']] };
  });

  for (const [name, profile] of [
    ['friend A', 'UNLOCK_ONLY'],
    ['friend B', 'RESTRICTED_DRIVE'],
  ] as const) {
    await demo.step(`share ${profile} with ${name} (car offline)`, "owner's phone (attests) and server", async () => {
      const deviceId = (await stack.createDevice(name)).deviceId;
      const shared = await stack.share(ownerPhone, { keyId: ownerKey, friendDeviceId: deviceId, profile });
      friends.push({ name, profile, deviceId, keyId: shared.friendKeyId });
      const wallet = (await stack.device(deviceId)).keys.find((key) => key.keyId === shared.friendKeyId);
      return {
        outcome: `friend key ${shared.friendKeyId} ${shared.state} on the server, in ${name}'s Wallet: ${wallet?.state}`,
        expect: [
          [wallet?.role === 'friend', `${name}'s Wallet holds the friend key`],
          [shared.state !== 'terminated', 'the server registered it'],
        ],
      };
    });
  }

  const [friendA, friendB] = friends;
  for (const [friend, action, allowed] of [
    [friendA, 'unlock', true],
    [friendA, 'engine-start', false],
    [friendB, 'engine-start', true],
  ] as const) {
    const first = action === 'unlock' || friend === friendB ? ' (first tap: enrolls at the car)' : '';
    await demo.step(`${friend.name} taps: ${action}${first}`, 'car', async () => {
      const tap = await stack.tap(friend.deviceId, vin, action);
      const car = await stack.car(vin);
      return {
        outcome: describeTap(tap),
        expect: [
          [tap.allowed === allowed, allowed ? 'the car grants it' : `the car refuses it (${friend.profile})`],
          [carKey(car, friend.keyId) !== undefined, `the car holds ${friend.name}'s key`],
        ],
      };
    });
  }

  await demo.step('the car is back in coverage', 'car (reports) and server', async () => {
    await stack.setCarOnline(vin, true);
    const states = await settle(
      () => Promise.all(friends.map((friend) => serverKey(friend.keyId))),
      (keys) => keys.every((key) => key.state === 'active'),
    );
    return {
      outcome: `friend keys on the server: ${states.value.map((key) => `${key.keyId} ${key.state}`).join(', ')}`,
      expect: [[states.held, 'both friend keys active on the server']],
    };
  });

  for (const lost of [true, false]) {
    const state = lost ? 'suspended' : 'active';
    await demo.step(
      lost ? "the owner's phone is lost (lost mode)" : "the owner's phone is found",
      'Device OEM → server → car',
      async () => {
        await stack.lostMode(ownerPhone, lost);
        const server = await serverKey(ownerKey);
        const car = await settle(
          () => stack.car(vin),
          (value) => carKey(value, ownerKey)?.state === state,
        );
        const wallet = await settle(
          () => stack.device(ownerPhone),
          (value) => value.keys.find((key) => key.keyId === ownerKey)?.state === state,
        );
        const tap = await stack.tap(ownerPhone, vin, 'unlock');
        return {
          outcome: `owner key ${server.state} on the server, ${carKey(car.value, ownerKey)?.state} in the car, ${wallet.value.keys.find((key) => key.keyId === ownerKey)?.state} in the Wallet; unlock ${tap.result}`,
          expect: [
            [server.state === state, `the server holds it ${state}`],
            [car.held, `the car holds it ${state}`],
            [wallet.held, `the Wallet shows it ${state}`],
            [tap.allowed === !lost, lost ? 'unlock refused' : 'unlock granted'],
          ],
        };
      },
    );
  }

  await demo.step(`the operator revokes ${friendA.name} while the car is offline`, 'operator → server', async () => {
    await stack.setCarOnline(vin, false);
    const revoked = await stack.keyAction(friendA.keyId, 'terminate', 'demo: revoked while the car is offline');
    const car = await stack.car(vin);
    return {
      outcome: `key ${friendA.keyId} ${revoked.state} on the server, still ${carKey(car, friendA.keyId)?.state} in the offline car`,
      expect: [
        [revoked.state === 'terminating', 'terminating until the car acknowledges'],
        [carKey(car, friendA.keyId)?.state === 'active', 'the offline car does not know yet'],
      ],
    };
  });

  await demo.step('the car reconnects and applies the revocation', 'car (acknowledges) and server', async () => {
    await stack.setCarOnline(vin, true);
    const car = await settle(
      () => stack.car(vin),
      (value) => (carKey(value, friendA.keyId)?.state ?? 'terminated') === 'terminated',
    );
    const server = await settle(
      () => serverKey(friendA.keyId),
      (key) => key.state === 'terminated',
    );
    const tap = await stack.tap(friendA.deviceId, vin, 'unlock');
    return {
      outcome: `key ${friendA.keyId} ${server.value.state} on the server, ${carKey(car.value, friendA.keyId)?.state ?? 'gone'} in the car; ${friendA.name}'s unlock ${tap.result}`,
      expect: [
        [car.held, 'the car terminated the key'],
        [server.held, 'the server holds it terminated'],
        [!tap.allowed, `${friendA.name} can no longer unlock`],
      ],
    };
  });

  await demo.step('verify the audit log', 'server (recomputes every hash)', async () => {
    const audit = await stack.verifyAudit();
    return {
      outcome: `${audit.checked} rows in ${audit.chains} chains, ${audit.ok ? 'intact' : 'broken'}`,
      expect: [[audit.ok, 'every hash matches']],
    };
  });
}

const STEPS = 16;

async function main(): Promise<number> {
  const { options } = parseArguments(process.argv.slice(2));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (options.help) {
    out(USAGE);
    return 0;
  }
  const connection = stackOptions(options);
  const adminUrl = connection.adminUrl ?? `http://localhost:${process.env.ADMIN_PORT ?? '8080'}`;
  const simUrl = connection.simUrl ?? `http://localhost:${process.env.SIM_CONTROL_PORT ?? '9090'}`;
  out(`digital-key-server demo: server ${adminUrl}, simulator ${simUrl}`);
  const running = await startDemoStack({ adminUrl, simUrl }, process.env, (line) => out(`  ${line}`));
  const demo = new Demo(out, STEPS);
  const started = performance.now();
  try {
    await story(new Stack({ ...connection, adminUrl, simUrl }), demo);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
  } finally {
    await running.stop();
  }
  const failed = demo.results.filter((result) => !result.ok).length;
  const rows = demo.results.map((r) => [r.ok ? '✓' : '✗', r.step, r.decidedBy, `${r.ms} ms`]);
  out('');
  for (const line of formatTable(['', 'STEP', 'DECIDED BY', 'TIME'], rows)) out(line);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const complete = demo.results.length === STEPS;
  out(
    failed === 0 && complete
      ? `\nall ${STEPS} steps held their expectations in ${seconds} s`
      : `\n${failed} of ${STEPS} steps failed${complete ? '' : ` (${STEPS - demo.results.length} not run)`} in ${seconds} s`,
  );
  return failed === 0 && complete ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof CliError ? error.exitCode : 1);
  },
);
