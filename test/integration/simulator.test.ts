import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateOpenApi } from '../../src/app/openapi-file.js';
import { CONTROL_OPERATIONS } from '../../src/sim/control/control-operations.js';
import { generateControlOpenApiJson } from '../../src/sim/control/export-openapi.js';
import { httpJson, type HttpResult } from '../../src/sim/world/http-json.js';
import { TEST_VIN, adminRequest, createTestPki, eventually, type TestSystem } from '../support/harness.js';
import { SystemWithSimulator } from '../support/simulator.js';

interface WalletKeyView {
  keyId: string;
  vin?: string;
  role: string;
  state: string;
  serverState?: string;
  entitlements?: { rights: string[] };
}
interface DeviceView {
  deviceId: string;
  name?: string;
  online: boolean;
  keys: WalletKeyView[];
}
interface CarKeyView {
  keyId: string;
  role: string;
  state: string;
  hasKpersistent: boolean;
}
interface CarView {
  vin: string;
  vehicleId: string;
  online: boolean;
  keys: CarKeyView[];
  lastSeq: number;
  events: Array<{ kind: string; result?: string; keyId?: string; action?: string }>;
}
interface TapView {
  allowed: boolean;
  result: string;
  reason: string;
  transaction: string;
  keyId?: string;
  durationMicros: number;
}
interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/**
 * The simulator process's parts against a real system (api and worker, PostgreSQL, Redis, real
 * TLS): the control API drives cars and phones, the server reaches the cars over the
 * telematics endpoint and the phones through the Device OEM backend, and the world survives a
 * restart from its sealed state file.
 */
describe('simulator', () => {
  let world: SystemWithSimulator;
  let system: TestSystem;
  let env: Record<string, string>;
  let base = '';
  const vin = TEST_VIN(71);

  async function startSimulator(): Promise<void> {
    await world.startSimulator();
    base = world.controlUrl;
  }

  const stopSimulator = () => world.stopSimulator();

  function control<T>(method: string, path: string, body?: unknown): Promise<HttpResult<T>> {
    return httpJson<T>(method, `${base}${path}`, body === undefined ? {} : { body });
  }

  async function ok<T>(method: string, path: string, body?: unknown, status = 200): Promise<T> {
    const res = await control<T>(method, path, body);
    expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
    return res.body;
  }

  beforeAll(async () => {
    world = await SystemWithSimulator.start(await createTestPki());
    ({ system, env } = world);
    base = world.controlUrl;
  });

  afterAll(async () => {
    await world?.stop();
  });

  it('provisions a car, pairs a phone, taps, shares, follows coverage and lost mode, and survives a restart', async () => {
    expect(await ok('GET', '/health')).toMatchObject({ status: 'ok', cars: 0, devices: 0 });

    // A car, provisioned through the server's POST /v1/vehicles.
    const provisioned = await ok<CarView>('POST', '/cars', { vin }, 201);
    expect(provisioned).toMatchObject({ vin, online: true, keys: [] });
    const token = await system.operatorToken(['vehicles:write', 'keys:read']);
    const onServer = await adminRequest<{ id: string; telematicsUrl: string }>(system, 'GET', `/v1/vehicles/${vin}`, {
      token,
    });
    expect(onServer.body.id).toBe(provisioned.vehicleId);
    expect(onServer.body.telematicsUrl).toBe(`${env.SIM_TELEMATICS_URL}/vehicles/${vin}/commands`);

    const alice = await ok<DeviceView>('POST', '/devices', { name: 'alice', model: 'Phone 17' }, 201);
    const bob = await ok<DeviceView>('POST', '/devices', { name: 'bob' }, 201);
    expect(alice).toMatchObject({ name: 'alice', online: true, keys: [] });

    // Owner pairing: the operator starts the session on the server, the car receives the verifier.
    const session = await adminRequest<{ sessionId: string; password: string }>(
      system,
      'POST',
      `/v1/vehicles/${vin}/owner-pairing`,
      { token, body: {} },
    );
    expect(session.status).toBe(201);
    const mode = await ok<{ pairingMode: { pairingSessionId: string } }>('POST', `/cars/${vin}/pairing`, {
      sessionId: session.body.sessionId,
    });
    expect(mode.pairingMode.pairingSessionId).toBe(session.body.sessionId);
    const wrong = await control<Problem>('POST', `/devices/${alice.deviceId}/pair`, {
      vin,
      password: session.body.password === '00000000' ? '11111111' : '00000000',
    });
    expect(wrong.status).toBe(409);
    expect(wrong.body.detail).toMatch(/pairing failed/);
    const paired = await ok<{ keyId: string; state: string }>('POST', `/devices/${alice.deviceId}/pair`, {
      vin,
      password: session.body.password,
      sessionId: session.body.sessionId,
    });
    expect(paired.state).toBe('active');
    const ownerKey = paired.keyId;

    // Taps: the first is standard and leaves a Kpersistent, the next one is fast.
    const first = await ok<TapView>('POST', `/devices/${alice.deviceId}/tap`, { vin, action: 'unlock' });
    expect(first).toMatchObject({ allowed: true, result: 'granted', transaction: 'standard', keyId: ownerKey });
    expect(first.durationMicros).toBeGreaterThan(0);
    const fast = await ok<TapView>('POST', `/devices/${alice.deviceId}/tap`, { vin, action: 'lock' });
    expect(fast).toMatchObject({ allowed: true, transaction: 'fast' });
    const standard = await ok<TapView>('POST', `/devices/${alice.deviceId}/tap`, {
      vin,
      action: 'unlock',
      mode: 'standard',
    });
    expect(standard).toMatchObject({ allowed: true, transaction: 'standard' });

    // Sharing through the invitation relay; the friend key is active once the car acknowledged it.
    const shared = await ok<{ friendKeyId: string }>('POST', `/devices/${alice.deviceId}/share`, {
      keyId: ownerKey,
      friendDeviceId: bob.deviceId,
      profile: 'UNLOCK_ONLY',
      pin: '123456',
      validitySeconds: 86_400,
    });
    const friendKey = shared.friendKeyId;
    await eventually(
      async () => (await ok<CarView>('GET', `/cars/${vin}`)).keys.find((key) => key.keyId === friendKey)?.state,
      (state) => state === 'active',
    );
    const bobWallet = await ok<DeviceView>('GET', `/devices/${bob.deviceId}`);
    expect(bobWallet.keys).toEqual([
      expect.objectContaining({
        keyId: friendKey,
        vin,
        role: 'friend',
        state: 'active',
        entitlements: { rights: ['unlock'] },
      }),
    ]);
    expect(await ok<TapView>('POST', `/devices/${bob.deviceId}/tap`, { vin, action: 'unlock' })).toMatchObject({
      allowed: true,
      keyId: friendKey,
    });
    const refused = await ok<TapView>('POST', `/devices/${bob.deviceId}/tap`, { vin, action: 'engine-start' });
    expect(refused).toMatchObject({ allowed: false, result: 'denied', keyId: friendKey });

    // Out of coverage, the car misses the suspension of lost mode; back online, it applies it.
    expect(await ok<CarView>('POST', `/cars/${vin}/online`, { online: false })).toMatchObject({ online: false });
    const lost = await ok<{ keys: Array<{ keyId: string; state: string }> }>(
      'POST',
      `/devices/${bob.deviceId}/lost-mode`,
      { enabled: true },
    );
    expect(lost.keys).toEqual([expect.objectContaining({ keyId: friendKey, state: 'suspended' })]);
    await eventually(
      async () => (await ok<DeviceView>('GET', `/devices/${bob.deviceId}`)).keys[0]?.state,
      (state) => state === 'suspended',
    );
    const offline = await ok<CarView>('GET', `/cars/${vin}`);
    expect(offline.online).toBe(false);
    expect(offline.keys.find((key) => key.keyId === friendKey)?.state).toBe('active');
    await ok('POST', `/cars/${vin}/online`, { online: true });
    await eventually(
      async () => (await ok<CarView>('GET', `/cars/${vin}`)).keys.find((key) => key.keyId === friendKey)?.state,
      (state) => state === 'suspended',
    );
    expect(await ok<TapView>('POST', `/devices/${bob.deviceId}/tap`, { vin, action: 'unlock' })).toMatchObject({
      allowed: false,
    });
    await ok('POST', `/devices/${bob.deviceId}/lost-mode`, { enabled: false });
    await eventually(
      async () => (await ok<CarView>('GET', `/cars/${vin}`)).keys.find((key) => key.keyId === friendKey)?.state,
      (state) => state === 'active',
    );

    // The car's decision log.
    const log = await ok<CarView>('GET', `/cars/${vin}`);
    const decisions = log.events.filter((event) => event.kind === 'transaction');
    expect(decisions.map((event) => event.result)).toEqual([
      'granted',
      'granted',
      'granted',
      'granted',
      'denied',
      // The suspended key: the phone's SE refuses before the car can decide.
      'failed',
    ]);

    // Restart from the same state file: phones, wallets and cars are as they were.
    const before = {
      car: await ok<CarView>('GET', `/cars/${vin}`),
      devices: await ok<{ items: DeviceView[] }>('GET', '/devices'),
    };
    const stateText = readFileSync(env.SIM_STATE_FILE, 'utf8');
    expect(stateText).not.toMatch(/PRIVATE KEY|BEGIN/);
    expect(stateText).not.toContain(ownerKey);
    await stopSimulator();
    await startSimulator();
    const after = {
      car: await ok<CarView>('GET', `/cars/${vin}`),
      devices: await ok<{ items: DeviceView[] }>('GET', '/devices'),
    };
    expect(after.devices).toEqual(before.devices);
    expect(after.car.keys).toEqual(before.car.keys);
    expect(after.car).toMatchObject({ vehicleId: provisioned.vehicleId, lastSeq: before.car.lastSeq, online: true });
    expect(after.car.events).toEqual(before.car.events);

    // The paired phone still unlocks the car (fast: both Kpersistents survived), the friend too.
    expect(await ok<TapView>('POST', `/devices/${alice.deviceId}/tap`, { vin, action: 'unlock' })).toMatchObject({
      allowed: true,
      transaction: 'fast',
      keyId: ownerKey,
    });
    expect(await ok<TapView>('POST', `/devices/${bob.deviceId}/tap`, { vin, action: 'unlock' })).toMatchObject({
      allowed: true,
      keyId: friendKey,
    });

    // The server still reaches the restored car and phone: deleting the friend key in the Wallet
    // terminates it on the server, the car applies it, and the push removes it from the Wallet.
    const deleted = await ok<{ state: string }>('POST', `/devices/${bob.deviceId}/keys/${friendKey}/delete`);
    expect(deleted.state).toBe('terminating');
    await eventually(
      async () => (await ok<CarView>('GET', `/cars/${vin}`)).keys.find((key) => key.keyId === friendKey)?.state,
      (state) => state === 'terminated',
    );
    await eventually(
      async () => (await ok<DeviceView>('GET', `/devices/${bob.deviceId}`)).keys.length,
      (count) => count === 0,
    );
  });

  it('meets bad input with 400 problem+json, unknown things with 404, and conflicts with 409', async () => {
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['POST', '/cars', { vin: 'not a vin' }, 400, /vin/],
      ['POST', '/cars', {}, 400, /vin/],
      ['POST', '/cars', { vin, extra: 1 }, 400, /additional/],
      ['POST', `/cars/${vin}/online`, { online: 'yes' }, 400, /online/],
      ['POST', '/devices', { name: '' }, 400, /name/],
      ['GET', '/cars/WDD1234567A999999', undefined, 404, /no car/],
      ['GET', '/devices/no-such-phone', undefined, 404, /no device/],
      ['POST', '/devices/no-such-phone/tap', { vin, action: 'unlock' }, 404, /no device/],
      ['POST', '/cars', { vin }, 409, /already provisioned/],
      ['GET', '/nowhere', undefined, 404, /no route/],
    ];
    for (const [method, path, body, status, detail] of cases) {
      const res = await control<Problem>(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(res.headers['content-type'], `${method} ${path}`).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status, type: expect.stringMatching(/^urn:digital-key-server:problem:/) });
      expect(res.body.detail, `${method} ${path}`).toMatch(detail);
    }
    const phone = (await ok<{ items: DeviceView[] }>('GET', '/devices')).items[0];
    const badAction = await control<Problem>('POST', `/devices/${phone.deviceId}/tap`, { vin, action: 'fly' });
    expect(badAction).toMatchObject({
      status: 400,
      body: { type: 'urn:digital-key-server:problem:validation-failed' },
    });
    const malformed = await httpJson<Problem>('POST', `${base}/devices`, { rawBody: '{"name":' });
    expect(malformed).toMatchObject({ status: 400, body: { status: 400 } });
    expect(malformed.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('documents every route in openapi/sim-control.json, a valid OpenAPI 3.1 document', async () => {
    const committed = readFileSync('openapi/sim-control.json', 'utf8');
    expect(committed).toBe(generateControlOpenApiJson());
    expect(await validateOpenApi(committed)).toEqual([]);
    const document = JSON.parse(committed) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toBe('3.1.0');
    const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(CONTROL_OPERATIONS.map((op) => `${op.method} ${op.path}`).sort());
    for (const operation of CONTROL_OPERATIONS) {
      const url = operation.path.replace(/\{(\w+)\}/g, ':$1');
      expect(world.app!.hasRoute({ method: operation.method, url }), `${operation.method} ${operation.path}`).toBe(
        true,
      );
    }
  });
});
