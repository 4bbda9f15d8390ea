import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type WorkerProcess } from '../../src/app/worker-process.js';
import { JOB_NAMES } from '../../src/telematics/delivery-policy.js';
import type { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import { changeKey, rowsFrom, serverKeyState, type Rows } from '../support/fault-ledger.js';
import { createTestPki, eventually, startTestSystem, type TestSystem } from '../support/harness.js';
import { LossyProxy } from '../support/lossy-proxy.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { deviceOemBackendFor } from '../support/simulated-world.js';
import { TestCar } from '../support/test-car.js';

const ROUNDS = 15;

describe('fault: duplicate and out-of-order deliveries of Device OEM notifications', () => {
  let backend: DeviceOemBackend;
  let proxy: LossyProxy;
  let system: TestSystem;
  let secondWorker: WorkerProcess;
  let rows: Rows;
  const cars: TestCar[] = [];

  beforeAll(async () => {
    const pki = await createTestPki();
    backend = deviceOemBackendFor(pki);
    // Every third answer of the backend is lost on the way back: the server sends that one again.
    proxy = new LossyProxy(pki, await backend.listen(), 3);
    const proxyPort = await proxy.listen();
    system = await startTestSystem({
      pki,
      worker: true,
      env: { PAIRING_SCRYPT_N: '1024', PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${proxyPort}` },
    });
    // A second worker on the same database and queues: the two compete for every job.
    secondWorker = await startWorker(system.config);
    rows = rowsFrom(system.database.url);
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await secondWorker?.close();
    await system?.stop();
    await proxy?.close();
    await backend?.close();
  });

  it('delivers every notification once, in key-version order, to the same final state', async () => {
    const keys = await Promise.all(
      [1, 2, 3].map(async (n) => {
        const car = await TestCar.provision(system, n);
        cars.push(car);
        return (await activeOwnerKey(system, car)).keyId;
      }),
    );
    // Rapid changes on every key, while the transport duplicates jobs and loses answers.
    await Promise.all(
      keys.map(async (keyId, k) => {
        for (let round = 0; round < ROUNDS; round++) {
          expect(await changeKey(system, keyId, round % 2 ? 'resume' : 'suspend')).toBe(200);
          if (round % 5 === 4) await duplicateEveryJob();
        }
        if (k === 0) expect(await changeKey(system, keyId, 'terminate')).toBe(200);
      }),
    );
    await duplicateEveryJob();

    const notifications = await eventually(
      () =>
        rows<{ id: string; keyId: string; keyVersion: number; status: string; type: string }>(
          `SELECT id, key_identifier AS "keyId", key_version AS "keyVersion", status, type
             FROM partner_notifications ORDER BY key_identifier, key_version`,
        ),
      (list) => list.length > 0 && list.every((n) => n.status === 'delivered'),
      { timeoutMs: 45_000, intervalMs: 200 },
    );
    const taken = backend.received.filter((r) => r.disposition !== 'duplicate' && r.disposition !== 'stale');
    const duplicates = backend.received.filter((r) => r.disposition === 'duplicate');
    const stale = backend.received.filter((r) => r.disposition === 'stale');
    console.info(
      `partner notifications: ${notifications.length} committed, ${taken.length} taken by the Device OEM, ` +
        `${duplicates.length} duplicates dropped by it, ${stale.length} out of order; ${proxy.dropped} answers lost`,
    );
    expect(proxy.dropped).toBeGreaterThan(0);
    expect(duplicates.length).toBeGreaterThan(0);
    // Nothing lost, nothing taken twice, nothing overtaken.
    expect(stale).toEqual([]);
    expect(taken.map((r) => r.notification.eventId).sort()).toEqual(notifications.map((n) => n.id).sort());
    for (const keyId of keys) {
      const versions = taken.filter((r) => r.notification.keyId === keyId).map((r) => r.notification.keyVersion);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      // The Device OEM's last word on the key is the server's state.
      const last = taken.filter((r) => r.notification.keyId === keyId).at(-1)!.notification;
      const server = await serverKeyState(rows, keyId);
      expect(last.state).toBe(server.state);
      expect(last.keyVersion).toBe(server.version);
    }
    expect((await serverKeyState(rows, keys[0])).state).toBe('terminated');
  }, 90_000);

  /** Redelivers every notification job under a new job id, as a replaying transport would. */
  async function duplicateEveryJob(): Promise<void> {
    const all = await rows<{ id: string }>('SELECT id FROM partner_notifications');
    await system.server.queues.partnerNotifications.addBulk(
      all.map((n) => ({
        name: JOB_NAMES.deliverPartnerNotification,
        data: { deliveryId: n.id, correlationId: null },
        opts: { jobId: `${n.id}.replay${Date.now()}` },
      })),
    );
  }
});
