import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../src/app/worker-process.js';
import {
  carKeyState,
  carLedger,
  changeKey,
  rowsFrom,
  serverKeyState,
  settledLedger,
  type LifecycleOperation,
  type Rows,
} from '../support/fault-ledger.js';
import { eventually, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { PrivateRedis } from '../support/private-services.js';
import { ProcessSystem } from '../support/server-processes.js';
import { TestCar } from '../support/test-car.js';

const OUTAGE_MS = 10_000;

describe('faults of Redis (a private redis-server per file)', () => {
  let redis: PrivateRedis;
  let system: TestSystem;
  let rows: Rows;
  const cars: TestCar[] = [];
  let next = 1;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    system = await startTestSystem({ worker: true, env: { REDIS_URL: redis.url, PAIRING_SCRYPT_N: '1024' } });
    rows = rowsFrom(system.database.url);
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await system?.stop();
    await redis?.remove();
  });

  async function carWithOwner(): Promise<{ car: TestCar; keyId: string }> {
    const car = await TestCar.provision(system, next++);
    cars.push(car);
    return { car, keyId: (await activeOwnerKey(system, car)).keyId };
  }

  const revocationOf = async (car: TestCar) =>
    (
      await rows<{ attempts: number; sweeps: number; status: string }>(
        `SELECT d.attempts, d.sweeps, d.status FROM deliveries d JOIN vehicles v ON v.id = d.vehicle_id
          WHERE v.vin = $1 AND d.fields->>'state' = 'terminated'`,
        [car.vin],
      )
    )[0];

  const unpublished = async () =>
    Number((await rows<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE published_at IS NULL'))[0].n);

  it('stopped for 10 s: the api keeps taking revocations into the outbox; relay and worker resume by themselves', async () => {
    const fleet = await Promise.all([carWithOwner(), carWithOwner(), carWithOwner()]);
    const [cycling, revoked, suspended] = fleet;
    const stoppedAt = Date.now();
    await redis.stop();

    const statuses: number[] = [];
    const latencies: number[] = [];
    const call = async (keyId: string, operation: LifecycleOperation) => {
      const started = Date.now();
      statuses.push(await changeKey(system, keyId, operation));
      latencies.push(Date.now() - started);
    };
    await call(revoked.keyId, 'terminate');
    await call(suspended.keyId, 'suspend');
    let round = 0;
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      await call(cycling.keyId, round++ % 2 === 0 ? 'suspend' : 'resume');
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    // Nothing reached the cars: it all waits in PostgreSQL.
    expect(await unpublished()).toBeGreaterThanOrEqual(statuses.length);
    expect(carKeyState(revoked.car, revoked.keyId)).toBe('active');

    await redis.start();
    const restartedAt = Date.now();
    const ledgers = await Promise.all(fleet.map(({ car }) => settledLedger(rows, car)));
    const drainedMs = Date.now() - restartedAt;
    console.info(
      `Redis down ${restartedAt - stoppedAt} ms, ${statuses.length} lifecycle calls taken (max ${Math.max(...latencies)} ms); backlog drained ${drainedMs} ms after restart`,
    );
    for (const ledger of ledgers) expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0 });
    expect(ledgers.reduce((sum, ledger) => sum + ledger.acked, 0)).toBeGreaterThanOrEqual(statuses.length);
    expect(await unpublished()).toBe(0);
    await eventually(
      () => serverKeyState(rows, revoked.keyId),
      (key) => key.state === 'terminated',
    );
    expect(carKeyState(revoked.car, revoked.keyId)).toBe('terminated');
    expect(carKeyState(suspended.car, suspended.keyId)).toBe('suspended');
    const cyclingState = (await serverKeyState(rows, cycling.keyId)).state;
    expect(cyclingState).toBe(round % 2 === 1 ? 'suspended' : 'active');
    expect(carKeyState(cycling.car, cycling.keyId)).toBe(cyclingState);
  }, 60_000);

  it('job data lost after the relay published it (FLUSHALL): the sweeper redelivers', async () => {
    const { car, keyId } = await carWithOwner();
    car.behaviour = 'offline';
    expect(await changeKey(system, keyId, 'terminate')).toBe(200);
    await eventually(unpublished, (n) => n === 0);
    await eventually(
      () => revocationOf(car),
      (delivery) => delivery !== undefined && delivery.attempts >= 1,
    );
    const flushedAt = Date.now();
    expect(await redis.command('FLUSHALL')).toBe('OK');
    // An attempt already running in the worker's memory fails against the offline car and finds no job to
    // retry; flush once more in case it wrote anything back, so that only the sweeper can deliver now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await redis.command('FLUSHALL')).toBe('OK');
    expect(await redis.command('DBSIZE')).toBe(0);
    car.behaviour = 'online';
    const ledger = await settledLedger(rows, car);
    console.info(`FLUSHALL → revocation acked through the sweeper in ${Date.now() - flushedAt} ms`);
    expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0 });
    expect(await revocationOf(car)).toMatchObject({ status: 'acked', sweeps: expect.any(Number) as number });
    expect((await revocationOf(car)).sweeps).toBeGreaterThanOrEqual(1);
    expect(carKeyState(car, keyId)).toBe('terminated');
    await eventually(
      () => serverKeyState(rows, keyId),
      (key) => key.state === 'terminated',
    );
  });

  it('full (maxmemory reached, noeviction): producers fail, the relay backs off, nothing lost once memory is raised', async () => {
    const { car, keyId } = await carWithOwner();
    const before = await carLedger(rows, car);
    expect(await redis.command('CONFIG', 'SET', 'maxmemory', '1')).toBe('OK');
    const fullSince = new Date();
    try {
      await expect(redis.command('SET', 'probe', 'x')).rejects.toThrow(/OOM/);
      const operations: LifecycleOperation[] = ['suspend', 'resume', 'suspend', 'resume', 'terminate'];
      for (const operation of operations) expect(await changeKey(system, keyId, operation)).toBe(200);
      // For two seconds nothing gets out of the outbox, and nothing is half-published.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const [written] = await rows<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE created_at >= $1', [
        fullSince,
      ]);
      expect(Number(written.n)).toBeGreaterThanOrEqual(operations.length);
      expect(await unpublished()).toBe(Number(written.n));
      expect((await carLedger(rows, car)).acked).toBe(before.acked);
    } finally {
      expect(await redis.command('CONFIG', 'SET', 'maxmemory', '0')).toBe('OK');
    }
    const freedAt = Date.now();
    const ledger = await settledLedger(rows, car);
    console.info(`Redis full: drained ${Date.now() - freedAt} ms after memory was raised`);
    expect(ledger).toMatchObject({ committed: before.committed + 5, lost: 0, duplicated: 0, outOfOrder: 0 });
    expect(carKeyState(car, keyId)).toBe('terminated');
  });

  it('with an evicting maxmemory-policy the worker refuses to start, naming the setting', async () => {
    expect(await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')).toBe('OK');
    try {
      await expect(startWorker(system.config)).rejects.toThrow(
        /has maxmemory-policy=allkeys-lru: queued jobs could be evicted\. Set "maxmemory-policy noeviction"/,
      );
    } finally {
      await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    }
  });

  it('when CONFIG is forbidden (managed Redis), the worker starts and warns that it could not check', async () => {
    const processes = new ProcessSystem({ pki: system.pki, databaseUrl: system.database.url, redisUrl: redis.url });
    expect(await redis.command('ACL', 'SETUSER', 'default', '-config')).toBe('OK');
    try {
      const worker = await processes.startWorker();
      expect(worker.stderr()).toMatch(
        /WARNING: cannot read maxmemory-policy of Redis at redis:\/\/127\.0\.0\.1:\d+\/? \(NOPERM.*\); make sure it is "noeviction"/,
      );
    } finally {
      await redis.command('ACL', 'SETUSER', 'default', '+config');
      await processes.stop();
    }
  });
});
