import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  carKeyState,
  changeKey,
  rowsFrom,
  serverKeyState,
  settledLedger,
  type LifecycleOperation,
  type Rows,
} from '../support/fault-ledger.js';
import { REDIS_URL, createTestPki } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { ProcessSystem, type ApiProcess } from '../support/server-processes.js';
import { TestCar } from '../support/test-car.js';

const CARS = 6;
const CALLS_PER_CLIENT = 20;

describe('two api and two worker processes on one database and Redis, under load', () => {
  let database: TestDatabase;
  let processes: ProcessSystem;
  let apis: ApiProcess[];
  let rows: Rows;
  const cars: TestCar[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    rows = rowsFrom(database.url);
    processes = new ProcessSystem({ pki: await createTestPki(), databaseUrl: database.url, redisUrl: REDIS_URL });
    const started = await Promise.all([
      processes.startApi(),
      processes.startApi(),
      processes.startWorker(),
      processes.startWorker(),
    ]);
    apis = started.slice(0, 2) as ApiProcess[];
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await processes?.stop();
    await database?.drop();
  });

  it('applies each command once at the car, loses no update and keeps key versions consistent', async () => {
    const fleet = await Promise.all(
      Array.from({ length: CARS }, async (_, i) => {
        const car = await TestCar.provision(apis[i % 2], i + 1);
        cars.push(car);
        return { car, keyId: (await activeOwnerKey(apis[(i + 1) % 2], car)).keyId };
      }),
    );
    const results: Array<{ keyId: string; operation: LifecycleOperation; status: number }> = [];
    const started = Date.now();
    // Two clients per key, one on each api, racing each other with suspend and resume; then a terminate from each.
    await Promise.all(
      fleet.flatMap(({ keyId }, k) =>
        apis.map(async (api, a) => {
          for (let i = 0; i < CALLS_PER_CLIENT; i++) {
            const operation: LifecycleOperation = (i + a + k) % 2 ? 'resume' : 'suspend';
            results.push({ keyId, operation, status: await changeKey(api, keyId, operation) });
          }
          results.push({ keyId, operation: 'terminate', status: await changeKey(api, keyId, 'terminate') });
        }),
      ),
    );
    const callsMs = Date.now() - started;
    expect(results.every((r) => r.status === 200 || r.status === 409)).toBe(true);

    const ledgers = await Promise.all(fleet.map(({ car }) => settledLedger(rows, car, 60_000)));
    console.info(
      `${results.length} lifecycle calls over 2 apis in ${callsMs} ms (${results.filter((r) => r.status === 200).length} applied, ` +
        `${results.filter((r) => r.status === 409).length} refused as stale moves); ` +
        `${ledgers.reduce((sum, l) => sum + l.committed, 0)} commands, ${ledgers.reduce((sum, l) => sum + l.lost, 0)} lost, ` +
        `${ledgers.reduce((sum, l) => sum + l.duplicated, 0)} applied twice, settled ${Date.now() - started} ms after the first call`,
    );
    for (const ledger of ledgers) expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0 });

    for (const { car, keyId } of fleet) {
      const accepted = results.filter((r) => r.keyId === keyId && r.status === 200);
      // Exactly one terminate wins; every accepted call is one command at the car, no more, no less.
      expect(accepted.filter((r) => r.operation === 'terminate')).toHaveLength(1);
      const commands = car.appliedCommands.filter((c) => c.cmd === 'SET_STATE' && c.keyId === keyId);
      expect(commands).toHaveLength(accepted.length);
      // No lost update: the car never sees a move that was not legal from the state before it.
      const states = ['active', ...commands.map((c) => c.state)];
      for (let i = 1; i < states.length; i++) expect(states[i]).not.toBe(states[i - 1]);
      expect(states.at(-1)).toBe('terminated');
      expect(carKeyState(car, keyId)).toBe('terminated');
      // Versions: one per accepted change (plus activation and the car's confirmation of the termination).
      const server = await serverKeyState(rows, keyId);
      expect(server.state).toBe('terminated');
      const notifications = await rows<{ keyVersion: number }>(
        'SELECT key_version AS "keyVersion" FROM partner_notifications WHERE key_identifier = $1 ORDER BY key_version',
        [keyId],
      );
      const versions = notifications.map((n) => n.keyVersion);
      expect(new Set(versions).size).toBe(versions.length);
      expect(versions.at(-1)).toBe(server.version);
      expect(versions).toHaveLength(accepted.length + 2);
    }
  }, 120_000);
});
