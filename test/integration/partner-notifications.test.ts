import { compactVerify } from 'jose';
import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import { adminRequest, createTestPki, eventually, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { deviceOemBackendFor } from '../support/simulated-world.js';
import { TestCar } from '../support/test-car.js';

interface Notification {
  eventId: string;
  type: string;
  keyId: string;
  keyVersion: number;
  state: string;
  vehicleId: string;
}

describe('notifications to the Device OEM backend', () => {
  let system: TestSystem;
  let backend: DeviceOemBackend;
  let car: TestCar;

  beforeAll(async () => {
    const pki = await createTestPki();
    backend = deviceOemBackendFor(pki);
    const port = await backend.listen();
    system = await startTestSystem({
      pki,
      worker: true,
      env: { PAIRING_SCRYPT_N: '1024', PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${port}` },
    });
    car = await TestCar.provision(system, 1);
  });
  afterAll(async () => {
    await car?.close();
    await system?.stop();
    await backend?.close();
  });

  async function received(): Promise<Notification[]> {
    const key = createPublicKey(system.pki.set.ktsPublicKey);
    const out: Notification[] = [];
    for (const entry of backend.notifications as Array<{ notification: string }>) {
      const verified = await compactVerify(entry.notification, key, { algorithms: ['ES256'] });
      expect(verified.protectedHeader.typ).toBe('dk-notification+jws');
      out.push(JSON.parse(Buffer.from(verified.payload).toString('utf8')) as Notification);
    }
    return out;
  }

  it('tells the partner, over mTLS and signed, every state its key goes through, in order', async () => {
    const owner = await activeOwnerKey(system, car);
    const operator = await system.operatorToken(['keys:write']);
    for (const operation of ['suspend', 'resume', 'terminate']) {
      const res = await adminRequest(system, 'POST', `/v1/keys/${owner.keyId}/${operation}`, {
        token: operator,
        body: {},
      });
      expect(res.status).toBe(200);
    }
    const notifications = await eventually(
      () => received(),
      (list) => list.some((n) => n.type === 'KEY_TERMINATED'),
    );
    const forKey = notifications.filter((n) => n.keyId === owner.keyId);
    expect(forKey.map((n) => n.type)).toEqual([
      'KEY_ACTIVATED',
      'KEY_SUSPENDED',
      'KEY_RESUMED',
      'KEY_TERMINATING',
      'KEY_TERMINATED',
    ]);
    const versions = forKey.map((n) => n.keyVersion);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(new Set(forKey.map((n) => n.eventId)).size).toBe(forKey.length);
    expect(forKey.every((n) => n.vehicleId === car.vehicleIdentifier)).toBe(true);
    const inbound = backend.calls.filter((call) => call.direction === 'inbound');
    expect(inbound.every((call) => call.peer === 'digital-key-server' && call.status === 202)).toBe(true);
  });
});
