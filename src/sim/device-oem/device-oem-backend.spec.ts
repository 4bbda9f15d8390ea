import { createPrivateKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPkiSet, type PkiSet } from '../../pki/dev-pki.js';
import { NOTIFICATION_JWS_TYPE } from '../../protocol/telematics-messages.js';
import {
  DeviceOemBackend,
  type DeviceOemBackendOptions,
  type DeviceOemSnapshot,
  type KeyNotification,
  type KeyNotificationType,
  type ManagedDevice,
} from './device-oem-backend.js';

const KEY_ID = 'a1b2c3d4e5f60718';
const VEHICLE_ID = '0102030405060708';

/** A phone that records what its maker's backend pushes. */
class RecordingDevice implements ManagedDevice {
  readonly deviceId = randomUUID();
  readonly applied: KeyNotification[] = [];

  applyKeyNotification(notification: KeyNotification): void {
    this.applied.push(notification);
  }
}

describe('DeviceOemBackend: notifications from the Vehicle OEM server', () => {
  let set: PkiSet;
  let ktsKey: KeyObject;
  const backends: DeviceOemBackend[] = [];

  beforeAll(async () => {
    set = await createPkiSet();
    ktsKey = createPrivateKey(set.ktsKey);
  });
  afterAll(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
  });

  function options(pinned = true): DeviceOemBackendOptions {
    return {
      serverCertPem: set.deviceOemServerCert,
      serverKeyPem: set.deviceOemServerKey,
      clientCertPem: set.deviceOemClientCert,
      clientKeyPem: set.deviceOemClientKey,
      vehicleOemRootPem: set.vehicleOemRootCert,
      vehicleOemBaseUrl: 'https://127.0.0.1:9',
      ...(pinned ? { ktsPublicKeyPem: set.ktsPublicKey } : {}),
      port: 0,
    };
  }

  async function startBackend(
    pinned = true,
    extra: Partial<DeviceOemBackendOptions> = {},
  ): Promise<{ backend: DeviceOemBackend; port: number }> {
    const backend = new DeviceOemBackend({ ...options(pinned), ...extra });
    backends.push(backend);
    return { backend, port: await backend.listen() };
  }

  function message(type: KeyNotificationType, keyVersion: number, eventId = randomUUID()): KeyNotification {
    const state = { KEY_SUSPENDED: 'suspended', KEY_TERMINATING: 'terminating', KEY_TERMINATED: 'terminated' }[
      type as string
    ];
    return {
      eventId,
      type,
      keyId: KEY_ID,
      vehicleId: VEHICLE_ID,
      keyVersion,
      state: state ?? 'active',
      occurredAt: new Date().toISOString(),
    };
  }

  function sign(payload: unknown, key: KeyObject = ktsKey, typ = NOTIFICATION_JWS_TYPE): Promise<string> {
    return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', typ }).sign(key);
  }

  /** POSTs as the Vehicle OEM server does: mTLS with its client certificate. */
  function post(port: number, body: unknown): Promise<number> {
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        `https://localhost:${port}/v1/notifications`,
        {
          method: 'POST',
          cert: set.serverClientCert,
          key: set.serverClientKey,
          ca: set.deviceOemCaCert,
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  it('applies a KTS-signed notification to the phone holding the key; refuses unsigned and forged ones with 400', async () => {
    const { backend, port } = await startBackend();
    const phone = new RecordingDevice();
    backend.enrollDevice(phone, [KEY_ID]);
    expect(backend.deviceHolding(KEY_ID)).toBe(phone.deviceId);

    const suspended = message('KEY_SUSPENDED', 2);
    expect(await post(port, { notification: await sign(suspended) })).toBe(202);
    expect(phone.applied).toEqual([suspended]);

    const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const refused = [
      { notification: await sign(message('KEY_RESUMED', 3), forger) },
      { notification: await sign(message('KEY_RESUMED', 3), ktsKey, 'dk-command+jws') },
      {
        notification: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(message('KEY_RESUMED', 3))).toString('base64url')}.`,
      },
      { notification: await sign({ ...message('KEY_RESUMED', 3), keyId: 'not hex' }) },
      message('KEY_RESUMED', 3),
      { notification: 42 },
    ];
    for (const body of refused) expect(await post(port, body)).toBe(400);
    expect(phone.applied).toHaveLength(1);
    expect(backend.notifications).toHaveLength(1);
    const inbound = backend.calls.filter((call) => call.direction === 'inbound');
    expect(inbound.map((call) => call.status)).toEqual([202, 400, 400, 400, 400, 400, 400]);
    expect(inbound[0]).toMatchObject({ peer: 'digital-key-server', outcome: 'applied' });
    expect(inbound[1].outcome).toMatch(/^refused: /);
  });

  it('deduplicates by eventId and ignores what is older than the newest version taken for the key', async () => {
    const { backend, port } = await startBackend();
    const phone = new RecordingDevice();
    backend.enrollDevice(phone, [KEY_ID]);

    const terminating = message('KEY_TERMINATING', 5);
    const jws = await sign(terminating);
    expect(await post(port, { notification: jws })).toBe(202);
    expect(await post(port, { notification: jws })).toBe(202);
    expect(await post(port, { notification: await sign(message('KEY_RESUMED', 4)) })).toBe(202);
    const profile = message('ACCESS_PROFILE_CHANGED', 5);
    expect(await post(port, { notification: await sign(profile) })).toBe(202);

    expect(phone.applied).toEqual([terminating, profile]);
    expect(backend.received.map((entry) => [entry.notification.type, entry.disposition])).toEqual([
      ['KEY_TERMINATING', 'applied'],
      ['KEY_TERMINATING', 'duplicate'],
      ['KEY_RESUMED', 'stale'],
      ['ACCESS_PROFILE_CHANGED', 'applied'],
    ]);
  });

  it('keeps its logs bounded and remembers a bounded window of events per key, across a snapshot', async () => {
    const { backend, port } = await startBackend(true, { history: 3 });
    const phone = new RecordingDevice();
    backend.enrollDevice(phone, [KEY_ID]);
    const sent: KeyNotification[] = [];
    for (let version = 1; version <= 40; version++) {
      const notification = message('ACCESS_PROFILE_CHANGED', version);
      sent.push(notification);
      expect(await post(port, { notification: await sign(notification) })).toBe(202);
    }
    expect(phone.applied).toEqual(sent);
    for (const log of [backend.calls, backend.notifications, backend.received]) {
      expect(log.length).toBeGreaterThanOrEqual(3);
      expect(log.length).toBeLessThan(6);
    }
    expect(backend.received.at(-1)?.notification).toEqual(sent[39]);

    // A repeat of a recent event is a duplicate; one of an event beyond the window is still dropped, as stale.
    expect(await post(port, { notification: await sign(sent[39]) })).toBe(202);
    expect(await post(port, { notification: await sign(sent[0]) })).toBe(202);
    expect(backend.received.slice(-2).map((entry) => entry.disposition)).toEqual(['duplicate', 'stale']);
    expect(phone.applied).toHaveLength(40);

    // A backend started again from the snapshot remembers the same.
    const snapshot = JSON.parse(JSON.stringify(backend.toSnapshot())) as DeviceOemSnapshot;
    expect(snapshot.keys[KEY_ID].version).toBe(40);
    expect(snapshot.keys[KEY_ID].events.length).toBeLessThanOrEqual(32);
    let taken: string | undefined;
    const again = await startBackend(true, { history: 0, onNotification: (entry) => (taken = entry.disposition) });
    again.backend.restoreSnapshot(snapshot);
    expect(await post(again.port, { notification: await sign(sent[39]) })).toBe(202);
    expect(taken).toBe('duplicate');
    expect(await post(again.port, { notification: await sign(message('KEY_RESUMED', 39)) })).toBe(202);
    expect(taken).toBe('stale');
    // A state saved before the per-key window keeps its versions.
    const legacy = await startBackend(true, { onNotification: (entry) => (taken = entry.disposition) });
    legacy.backend.restoreSnapshot({ devices: [], keyVersions: { [KEY_ID]: 40 } } as unknown as DeviceOemSnapshot);
    expect(await post(legacy.port, { notification: await sign(message('KEY_RESUMED', 39)) })).toBe(202);
    expect(taken).toBe('stale');
    // history 0 keeps no log at all.
    expect([again.backend.calls, again.backend.notifications, again.backend.received].map((log) => log.length)).toEqual(
      [0, 0, 0],
    );
    expect(() => new DeviceOemBackend({ ...options(), history: -1 })).toThrow(RangeError);
  });

  it('holds pushes for a phone out of reach and delivers them in order when it is back; keys nobody holds are only recorded', async () => {
    const { backend, port } = await startBackend();
    const phone = new RecordingDevice();
    backend.enrollDevice(phone);
    backend.trackKey(phone.deviceId, KEY_ID);
    backend.setDeviceReachable(phone.deviceId, false);

    const first = message('KEY_SUSPENDED', 2);
    const second = message('KEY_RESUMED', 3);
    for (const notification of [first, second])
      expect(await post(port, { notification: await sign(notification) })).toBe(202);
    expect(phone.applied).toEqual([]);
    expect(backend.pendingFor(phone.deviceId)).toEqual([first, second]);
    backend.setDeviceReachable(phone.deviceId, true);
    expect(phone.applied).toEqual([first, second]);
    expect(backend.pendingFor(phone.deviceId)).toEqual([]);

    const orphan = { ...message('KEY_SUSPENDED', 1), keyId: 'ffffffffffffffff' };
    expect(await post(port, { notification: await sign(orphan) })).toBe(202);
    expect(backend.received.at(-1)).toMatchObject({ disposition: 'no-device' });
  });

  it('without a pinned KTS key it records notifications and applies none', async () => {
    const { backend, port } = await startBackend(false);
    const phone = new RecordingDevice();
    backend.enrollDevice(phone, [KEY_ID]);
    const body = { notification: await sign(message('KEY_SUSPENDED', 2)) };
    expect(await post(port, body)).toBe(202);
    expect(backend.notifications).toEqual([body]);
    expect(phone.applied).toEqual([]);
    expect(backend.received).toEqual([]);
  });
});
