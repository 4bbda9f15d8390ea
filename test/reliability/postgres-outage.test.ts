import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  carKeyState,
  changeKey,
  rowsFrom,
  serverKeyState,
  settledLedger,
  type LifecycleOperation,
  type Rows,
} from '../support/fault-ledger.js';
import { adminRequest, eventually, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { PrivatePostgres } from '../support/private-services.js';
import { TestCar } from '../support/test-car.js';

const OUTAGE_MS = 10_000;

describe('fault: PostgreSQL stopped for 10 s (a private cluster)', () => {
  let pg: PrivatePostgres;
  let system: TestSystem;
  let rows: Rows;
  const cars: TestCar[] = [];

  beforeAll(async () => {
    pg = await PrivatePostgres.start();
    const url = await pg.createMigratedDatabase();
    system = await startTestSystem({
      worker: true,
      database: { name: 'digital_key', url, drop: () => Promise.resolve() },
      env: { PAIRING_SCRYPT_N: '1024' },
    });
    rows = rowsFrom(url);
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await system?.stop();
    await pg?.remove();
  });

  it('answers 503 problem+json at once, leaves nothing half-applied, and resumes by itself', async () => {
    const fleet = await Promise.all(
      [1, 2].map(async (n) => {
        const car = await TestCar.provision(system, n);
        cars.push(car);
        return { car, keyId: (await activeOwnerKey(system, car)).keyId };
      }),
    );
    const [inFlight, steady] = fleet;
    const operator = await system.operatorToken(['keys:read', 'keys:write']);

    // A command the car applies just before the database goes: its ack cannot be recorded.
    inFlight.car.answerDelayMs = 1_000;
    expect(await changeKey(system, inFlight.keyId, 'suspend')).toBe(200);
    await eventually(
      () => carKeyState(inFlight.car, inFlight.keyId),
      (state) => state === 'suspended',
    );
    const stoppedAt = Date.now();
    await pg.stop();
    inFlight.car.answerDelayMs = 0;

    const answers: Array<{ status: number; type: string; contentType: string; ms: number }> = [];
    const attempt = async (operation: LifecycleOperation | 'read') => {
      const started = Date.now();
      const res =
        operation === 'read'
          ? await adminRequest<{ type: string }>(system, 'GET', `/v1/keys/${steady.keyId}`, { token: operator })
          : await adminRequest<{ type: string }>(system, 'POST', `/v1/keys/${steady.keyId}/${operation}`, {
              token: operator,
              body: {},
            });
      answers.push({
        status: res.status,
        type: res.body.type,
        contentType: String(res.headers['content-type']),
        ms: Date.now() - started,
      });
    };
    const operations: Array<LifecycleOperation | 'read'> = ['suspend', 'read', 'terminate', 'resume'];
    for (let i = 0; Date.now() - stoppedAt < OUTAGE_MS; i++) {
      await attempt(operations[i % operations.length]);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const health = await adminRequest<{ status: string }>(system, 'GET', '/health');
    expect(health.status).toBe(503);
    expect(answers.length).toBeGreaterThan(10);
    for (const answer of answers) {
      expect(answer).toMatchObject({ status: 503, contentType: expect.stringContaining('application/problem+json') });
      expect(answer.type).toMatch(/service-unavailable$/);
    }
    const slowest = Math.max(...answers.map((answer) => answer.ms));
    expect(slowest).toBeLessThan(2_000);

    await pg.start();
    const restartedAt = Date.now();
    // The api takes requests again without a restart.
    await eventually(
      () => changeKey(system, steady.keyId, 'suspend'),
      (status) => status === 200,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    const apiBackMs = Date.now() - restartedAt;
    const ledgers = await Promise.all(fleet.map(({ car }) => settledLedger(rows, car)));
    const drainedMs = Date.now() - restartedAt;
    console.info(
      `PostgreSQL down ${restartedAt - stoppedAt} ms: ${answers.length} calls answered 503 (slowest ${slowest} ms); api back ${apiBackMs} ms, deliveries settled ${drainedMs} ms after restart`,
    );
    for (const ledger of ledgers) expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0 });
    // The ack the car sent during the outage was taken on the retry; the car applied it once.
    expect(inFlight.car.appliedCommands.filter((c) => c.cmd === 'SET_STATE')).toHaveLength(1);
    expect((await serverKeyState(rows, inFlight.keyId)).state).toBe('suspended');
    // Nothing of the refused calls was written: the steady key moved once (the suspend after the restart).
    const steadyCommands = await rows<{ state: string }>(
      `SELECT d.fields->>'state' AS state FROM deliveries d JOIN vehicles v ON v.id = d.vehicle_id
        WHERE v.vin = $1 AND d.command = 'SET_STATE'`,
      [steady.car.vin],
    );
    expect(steadyCommands.map((c) => c.state)).toEqual(['suspended']);
    expect(await serverKeyState(rows, steady.keyId)).toMatchObject({ state: 'suspended' });
    expect(carKeyState(steady.car, steady.keyId)).toBe('suspended');
    const audit = await adminRequest<{ ok: boolean; checked: number }>(system, 'GET', '/v1/audit/verify', {
      token: await system.operatorToken(['audit:read']),
    });
    expect(audit.status).toBe(200);
    expect(audit.body.ok).toBe(true);
    expect(audit.body.checked).toBeGreaterThan(0);
  }, 60_000);
});
