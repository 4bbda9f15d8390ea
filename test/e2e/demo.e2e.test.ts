import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { httpJson } from '../../src/sim/world/http-json.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { REDIS_URL } from '../support/harness.js';
import { runScript } from '../support/run-script.js';
import { freePort } from '../support/simulator.js';

const STEPS = [
  'provision car',
  "pair the owner's phone at the car",
  'owner taps: unlock',
  'owner taps: engine-start',
  'the car goes out of coverage',
  'share UNLOCK_ONLY with friend A (car offline)',
  'share RESTRICTED_DRIVE with friend B (car offline)',
  'friend A taps: unlock (first tap: enrolls at the car)',
  'friend A taps: engine-start',
  'friend B taps: engine-start (first tap: enrolls at the car)',
  'the car is back in coverage',
  "the owner's phone is lost (lost mode)",
  "the owner's phone is found",
  'the operator revokes friend A while the car is offline',
  'the car reconnects and applies the revocation',
  'verify the audit log',
];

/**
 * `npm run demo` end to end: it starts api, worker and simulator as processes on free ports, its
 * own database and a fresh PKI, runs the story against them, and stops them.
 */
describe('demo', () => {
  let database: TestDatabase | undefined;

  afterAll(async () => {
    await database?.drop();
  });

  it('starts the stack, runs every step with its expectations held, prints the summary and exits 0', async () => {
    database = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'dks-demo-'));
    const [admin, api, control, deviceOem, telematics] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      PKI_DIR: join(dir, 'pki'),
      DEMO_DIR: join(dir, 'run'),
      DEMO_DATABASE_URL: database.url,
      REDIS_URL,
      QUEUE_PREFIX: `demo${randomBytes(4).toString('hex')}`,
      PAIRING_SCRYPT_N: '1024',
      ADMIN_PORT: String(admin),
      API_PORT: String(api),
      SIM_CONTROL_PORT: String(control),
      SIM_DEVICE_OEM_PORT: String(deviceOem),
      SIM_TELEMATICS_PORT: String(telematics),
    };
    const run = await runDemo(env);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stderr).toBe('');

    const lines = run.stdout.split('\n');
    expect(lines).toContain(`  development PKI created in ${env.PKI_DIR}`);
    expect(lines.some((line) => /^ {2}database \S+ at \S+ created afresh for the demo and migrated$/.test(line))).toBe(
      true,
    );
    expect(lines).toContain(`  started api, worker, sim (output in ${env.DEMO_DIR})`);
    // One progress line per step, in order, each held, with who decided and how long.
    const progress = lines.filter((line) => /^\[[ \d]{2}\/16\] /.test(line));
    expect(progress).toHaveLength(STEPS.length);
    progress.forEach((line, index) => {
      expect(line).toMatch(/^\[[ \d]{2}\/16\] ✓ .+: .+ — decided by .+ — \d+ ms$/);
      expect(line).toContain(STEPS[index]);
    });
    expect(run.stdout).toMatch(/friend A taps: engine-start: denied \(right-missing\)/);
    expect(run.stdout).toMatch(/owner key suspended on the server, suspended in the car, suspended in the Wallet/);
    expect(run.stdout).toMatch(/terminated on the server, terminated in the car; friend A's unlock (denied|failed)/);

    // The summary table: a header and one held row per step, then the verdict.
    const header = lines.findIndex((line) => /^\s+STEP\s+DECIDED BY\s+TIME$/.test(line));
    expect(header).toBeGreaterThan(0);
    const rows = lines.slice(header + 1, header + 1 + STEPS.length);
    rows.forEach((row, index) => expect(row).toMatch(new RegExp(`^✓ {2}${escape(STEPS[index])}.* \\d+ ms$`)));
    expect(lines[header + 1 + STEPS.length + 1]).toMatch(/^all 16 steps held their expectations in [\d.]+ s$/);

    // The demo stopped what it started; its simulator state is sealed.
    const stopped = await httpJson('GET', `http://localhost:${admin}/health`).then(
      () => false,
      () => true,
    );
    expect(stopped).toBe(true);
    expect(existsSync(join(dir, 'run', 'sim-state.json'))).toBe(true);
  }, 90_000);

  it('ends with one line and a non-zero exit when PostgreSQL cannot be reached', async () => {
    const [closed, admin, control] = await Promise.all([freePort(), freePort(), freePort()]);
    const dir = mkdtempSync(join(tmpdir(), 'dks-demo-'));
    const run = await runDemo({
      PATH: process.env.PATH,
      PKI_DIR: join(dir, 'pki'),
      DEMO_DIR: join(dir, 'run'),
      DEMO_DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/digital_key_demo`,
      ADMIN_PORT: String(admin),
      SIM_CONTROL_PORT: String(control),
    });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(
      new RegExp(
        `^error: PostgreSQL at 127\\.0\\.0\\.1:${closed} cannot be used \\(.+\\): start it or set DEMO_DATABASE_URL\\n$`,
      ),
    );
  });
});

const runDemo = (env: NodeJS.ProcessEnv) => runScript('dist/src/cli/demo.js', [], env);

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
