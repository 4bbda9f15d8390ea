import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELIVERY_WORKER_LOCK } from '../../src/telematics/delivery-policy.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { carKeyState, changeKey, rowsFrom, serverKeyState, settledLedger, type Rows } from '../support/fault-ledger.js';
import { REDIS_URL, createTestPki, eventually } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { ProcessSystem, type ApiProcess, type ServerProcess } from '../support/server-processes.js';
import { TestCar } from '../support/test-car.js';

/** BullMQ takes over a dead worker's job once its lock expired and a stalled check ran. */
const TAKEOVER_BOUND_MS = DELIVERY_WORKER_LOCK.lockDuration + DELIVERY_WORKER_LOCK.stalledInterval;

describe('fault: the worker process is killed while a command awaits the car', () => {
  let database: TestDatabase;
  let processes: ProcessSystem;
  let api: ApiProcess;
  let worker: ServerProcess;
  let rows: Rows;
  const cars: TestCar[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    rows = rowsFrom(database.url);
    // The sweeper's grace is long here so that the redelivery can only come from BullMQ's stalled-job takeover.
    processes = new ProcessSystem({
      pki: await createTestPki(),
      databaseUrl: database.url,
      redisUrl: REDIS_URL,
      env: { DELIVERY_SWEEP_GRACE_MS: '120000', TELEMATICS_TIMEOUT_MS: '60000' },
    });
    [api, worker] = await Promise.all([processes.startApi(), processes.startWorker()]);
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await processes?.stop();
    await database?.drop();
  });

  it('redelivers within lockDuration + stalledInterval, applies once, ends in the right key state', async () => {
    expect(TAKEOVER_BOUND_MS).toBeLessThanOrEqual(10_000);
    const car = await TestCar.provision(api, 1);
    const bystander = await TestCar.provision(api, 2);
    cars.push(car, bystander);
    const owner = await activeOwnerKey(api, car);

    car.answerDelayMs = 120_000; // applies at once, answers never (for this worker)
    expect(await changeKey(api, owner.keyId, 'suspend')).toBe(200);
    const suspendSeq = await eventually(
      () => car.appliedCommands.find((c) => c.cmd === 'SET_STATE' && c.state === 'suspended')?.seq,
      (seq) => seq !== undefined,
    );
    const receivedBefore = car.received.length;

    const killedAt = Date.now();
    await worker.kill('SIGKILL');
    car.answerDelayMs = 0;
    // Load keeps coming while no worker runs: the api writes to the outbox.
    const token = await api.operatorToken(['vehicles:write']);
    const syncs = await Promise.all(
      Array.from({ length: 5 }, () =>
        fetch(`${api.adminUrl}/v1/vehicles/${bystander.vin}/sync`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        }).then((res) => res.status),
      ),
    );
    expect(syncs).toEqual([202, 202, 202, 202, 202]);
    worker = await processes.startWorker();
    const restartedAt = Date.now();

    const redeliveredAt = await eventually(
      () => car.receivedAt.slice(receivedBefore).find((_, i) => car.received[receivedBefore + i] === suspendSeq),
      (at) => at !== undefined,
      { timeoutMs: TAKEOVER_BOUND_MS + 10_000, intervalMs: 20 },
    );
    const recoveryMs = redeliveredAt! - killedAt;
    const takeoverMs = redeliveredAt! - restartedAt;
    console.info(
      `worker SIGKILL → redelivery of seq ${suspendSeq}: ${recoveryMs} ms (${takeoverMs} ms after the new worker was up)`,
    );
    // Restarting the process takes its start-up time; the takeover itself is bounded by the lock settings.
    expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS + 1_000);

    const ledger = await settledLedger(rows, car);
    expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0, open: 0 });
    expect(car.appliedCommands.filter((c) => c.seq === suspendSeq)).toHaveLength(1);
    expect(car.received.filter((seq) => seq === suspendSeq).length).toBeGreaterThanOrEqual(2);
    expect(carKeyState(car, owner.keyId)).toBe('suspended');
    expect((await serverKeyState(rows, owner.keyId)).state).toBe('suspended');
    const bystanderLedger = await settledLedger(rows, bystander);
    expect(bystanderLedger).toMatchObject({ committed: 5, acked: 5, lost: 0, duplicated: 0, outOfOrder: 0 });

    // The key goes on moving normally after the recovery.
    expect(await changeKey(api, owner.keyId, 'resume')).toBe(200);
    await eventually(
      () => carKeyState(car, owner.keyId),
      (state) => state === 'active',
    );
    expect(await settledLedger(rows, car)).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0 });
  }, 60_000);
});
