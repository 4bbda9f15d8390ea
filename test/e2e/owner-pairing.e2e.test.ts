import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SW } from '../../src/protocol/apdu.js';
import { MAX_FAILED_PAIRING_ATTEMPTS } from '../../src/protocol/pairing.js';
import type { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import { adminRequest, eventually, startTestSystem, TEST_VIN, type TestSystem } from '../support/harness.js';
import { SimulatedWorld } from '../support/simulated-world.js';

interface PairingSession {
  sessionId: string;
  password: string;
  verifierDelivery: { id: string; seq: number };
}

interface Delivery {
  seq: number;
  command: string;
  status: string;
}

/**
 * Owner pairing end to end (PROTOCOL.md §3): the real api and worker, a car provisioned through
 * the operator API behind a real HTTPS telematics endpoint, the mocked Device OEM backend over
 * mTLS, and a phone whose software SE pairs with the car over the emulated NFC link.
 */
describe('owner pairing, end to end', () => {
  let system: TestSystem;
  let world: SimulatedWorld;
  let operator: string;

  beforeAll(async () => {
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '4096' } });
    world = await SimulatedWorld.start(system);
    operator = await system.operatorToken(['vehicles:write', 'keys:read']);
  });
  afterAll(async () => {
    await world?.close();
    await system?.stop();
  });

  async function startPairing(car: SimulatedVehicle, n: number): Promise<PairingSession> {
    const res = await adminRequest<PairingSession>(system, 'POST', `/v1/vehicles/${TEST_VIN(n)}/owner-pairing`, {
      token: operator,
      body: {},
    });
    expect(res.status).toBe(201);
    // The worker sends the verifier over telematics; the car installs it and acks.
    await eventually(
      () => car.pairingMode.pairingSessionId,
      (id) => id === res.body.sessionId,
    );
    await eventually(
      async () => (await deliveries(n)).find((d) => d.seq === res.body.verifierDelivery.seq)?.status,
      (status) => status === 'acked',
    );
    return res.body;
  }

  async function deliveries(n: number): Promise<Delivery[]> {
    const res = await adminRequest<{ items: Delivery[] }>(system, 'GET', `/v1/vehicles/${TEST_VIN(n)}/deliveries`, {
      token: operator,
    });
    expect(res.status).toBe(200);
    return res.body.items;
  }

  it('operator → verifier to the car → NFC pairing → registration → KTS receipt unlocks → ADD_KEY acked', async () => {
    const car = await world.provisionCar(1);
    const session = await startPairing(car, 1);
    expect(car.events.pairings().at(-1)).toMatchObject({
      result: 'verifier-installed',
      pairingSessionId: session.sessionId,
      detail: 'from telematics',
    });

    // The car is parked out of coverage: the KTS receipt is its only way to learn of the new key.
    world.setOnline(car, false);
    const phone = world.device();
    phone.enterPairingPassword(session.password);
    const paired = await phone.pairWith(car);
    expect(paired).toMatchObject({ result: 'paired', sw: SW.OK });
    const keyId = paired.keyId!;
    expect(car.endpoint(keyId)).toMatchObject({ role: 'owner', state: 'pending' });
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-pending' });

    const registered = await phone.registerKey(keyId);
    expect(registered).toMatchObject({ keyId, state: 'registered', serverState: 'pending' });
    expect(world.deviceOem.calls).toContainEqual(
      expect.objectContaining({ direction: 'outbound', method: 'POST', path: '/partner/v1/keys', status: 201 }),
    );

    const first = await phone.tap(car, 'door', 'unlock');
    expect(first).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(car.ecuState.locked).toBe(false);
    expect(car.events.entries()).toContainEqual(
      expect.objectContaining({ kind: 'key-list', keyId, source: 'kts-receipt', state: 'active' }),
    );
    const start = await phone.tap(car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(car.ecuState.engineRunning).toBe(true);
    expect(await world.deviceOem.getKey(keyId)).toMatchObject({ state: 'pending' });

    // Back in coverage: ADD_KEY arrives, the car acks, the server marks the key active.
    world.setOnline(car, true);
    await eventually(
      async () => (await world.deviceOem.getKey(keyId)).state,
      (state) => state === 'active',
    );
    expect(car.telematics!.applied.map((c) => c.cmd)).toEqual(['PAIRING_VERIFIER', 'ADD_KEY']);
    expect(car.endpoint(keyId)).toMatchObject({ state: 'active', hasKpersistent: true });
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });

  it('refuses after 7 wrong passwords, even the right one; a new pairing session resets the car', async () => {
    const car = await world.provisionCar(2);
    const first = await startPairing(car, 2);
    const wrong = first.password === '00000000' ? '00000001' : '00000000';
    const phone = world.device();
    for (let attempt = 1; attempt <= MAX_FAILED_PAIRING_ATTEMPTS; attempt++) {
      phone.enterPairingPassword(wrong);
      expect(await phone.pairWith(car)).toMatchObject({ result: 'refused', reason: 'wrong-password' });
    }
    expect(car.pairingMode).toMatchObject({ failedAttempts: MAX_FAILED_PAIRING_ATTEMPTS, lockedOut: true });
    phone.enterPairingPassword(first.password);
    expect(await phone.pairWith(car)).toMatchObject({
      result: 'refused',
      reason: 'attempts-exhausted',
      sw: SW.PAIRING_NOT_READY,
    });
    expect(car.endpoints()).toHaveLength(0);

    const second = await startPairing(car, 2);
    expect(car.pairingMode).toMatchObject({ failedAttempts: 0, lockedOut: false });
    phone.enterPairingPassword(second.password);
    const paired = await phone.pairWith(car);
    expect(paired).toMatchObject({ result: 'paired' });
    await phone.registerKey(paired.keyId!);
    await eventually(
      async () => (await world.deviceOem.getKey(paired.keyId!)).state,
      (state) => state === 'active',
    );
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId: paired.keyId });
  });

  it('a device cannot pair with a car that has no verifier (9484)', async () => {
    const car = await world.provisionCar(3);
    const phone = world.device();
    phone.enterPairingPassword('12345678');
    expect(await phone.pairWith(car)).toMatchObject({
      result: 'refused',
      reason: 'no-verifier',
      sw: SW.PAIRING_NOT_READY,
    });
    expect(phone.secureElement.keys()).toHaveLength(0);
    expect(car.endpoints()).toHaveLength(0);
  });
});
