import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  KeyNotificationType,
  NotificationDisposition,
  ReceivedNotification,
} from '../../src/sim/device-oem/device-oem-backend.js';
import type { SimulatedDevice } from '../../src/sim/device/simulated-device.js';
import type { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import type { KeyListEvent, TransactionReason } from '../../src/sim/vehicle/vehicle-events.js';
import { adminRequest, eventually, type TestSystem } from '../support/harness.js';
import { SimulatedWorld, type PairedOwner } from '../support/simulated-world.js';

interface KeyView {
  keyId: string;
  role: string;
  state: string;
  version: number;
}

interface Timeline {
  entries: Array<{ source: string; event: string; details: Record<string, unknown> }>;
}

/**
 * Revocation end to end (PROTOCOL.md §5, §8): the real api and worker, cars behind a real HTTPS
 * telematics endpoint, the mocked Device OEM backend receiving the server's signed
 * notifications over mTLS and pushing them to its phones, and owner keys made by NFC pairing.
 * Whoever starts it, a revocation counts only when the CAR refuses the key: each test holds the
 * phone out of reach of its maker's backend while the car decides, so the phone still presents
 * the key (and its old Kpersistent) exactly as a stolen or offline phone would.
 */
describe('revocation, end to end', () => {
  let world: SimulatedWorld;
  let system: TestSystem;
  let operator: string;

  beforeAll(async () => {
    world = await SimulatedWorld.startWithSystem({ env: { PAIRING_SCRYPT_N: '1024' } });
    system = world.system;
    operator = await system.operatorToken(['keys:read', 'keys:write']);
  });
  afterAll(async () => {
    await world?.close();
  });

  async function operatorCall<T = KeyView>(method: 'GET' | 'POST', path: string, body?: unknown) {
    return adminRequest<T>(system, method, path, { token: operator, ...(body === undefined ? {} : { body }) });
  }

  async function serverState(keyId: string): Promise<string> {
    return (await operatorCall('GET', `/v1/keys/${keyId}`)).body.state;
  }

  /** A standard unlock (no Kpersistent yet at the car) and a fast lock: both sides now hold Kpersistent. */
  async function warmUp(car: SimulatedVehicle, phone: SimulatedDevice, keyId: string): Promise<void> {
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId });
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast', keyId });
    expect(car.endpoint(keyId)).toMatchObject({ state: 'active', hasKpersistent: true });
    expect(phone.secureElement.key(keyId)).toMatchObject({ state: 'active', hasKpersistent: true });
  }

  /**
   * The car refuses the key by its own decision: a fast attempt (unlock: the phone answers with a
   * cryptogram from its old Kpersistent, which matches nothing, so the car falls back to AUTH1 and
   * identifies the key) and a standard one (engine start). Nothing is actuated.
   */
  async function expectCarRefuses(
    car: SimulatedVehicle,
    phone: SimulatedDevice,
    keyId: string,
    reason: TransactionReason,
  ): Promise<void> {
    const actuations = car.actuations;
    const fast = await phone.tap(car, 'door', 'unlock');
    expect(fast).toMatchObject({ result: 'denied', transaction: 'standard', reason, keyId });
    const start = await phone.tap(car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'denied', transaction: 'standard', reason, keyId });
    expect(car.actuations).toBe(actuations);
    expect(car.ecuState).toMatchObject({ locked: true, engineRunning: false });
    expect(car.events.lastTransaction()).toMatchObject({ action: 'engine-start', result: 'denied', reason, keyId });
  }

  const received = (keyId: string): ReceivedNotification[] =>
    world.deviceOem.received.filter((entry) => entry.notification.keyId === keyId);

  /** Waits until the Device OEM backend verified a notification of `type` for the key. */
  async function notified(
    keyId: string,
    type: KeyNotificationType,
    disposition?: NotificationDisposition,
  ): Promise<ReceivedNotification> {
    const entry = await eventually(
      () => received(keyId).find((candidate) => candidate.notification.type === type),
      (found) => found !== undefined,
    );
    if (disposition) expect(entry!.disposition).toBe(disposition);
    return entry!;
  }

  async function carState(car: SimulatedVehicle, keyId: string, state: string): Promise<void> {
    await eventually(
      () => car.endpoint(keyId)?.state,
      (current) => current === state,
    );
  }

  function expectKeyDeleted(phone: SimulatedDevice, keyId: string): void {
    expect(phone.secureElement.keys().map((key) => key.keyId)).not.toContain(keyId);
    expect(phone.walletKey(keyId)).toBeUndefined();
    expect(phone.keyUpdates).toContainEqual(
      expect.objectContaining({ keyId, type: 'KEY_TERMINATING', result: 'deleted' }),
    );
  }

  async function pairedAndWarm(n: number): Promise<{ car: SimulatedVehicle; owner: PairedOwner }> {
    const car = await world.provisionCar(n);
    const owner = await world.pairOwner(car);
    await warmUp(car, owner.phone, owner.keyId);
    return { car, owner };
  }

  it('operator: suspend → the car refuses; resume → it accepts again; terminate → terminating, terminated on the ack, refused, deleted on the phone', async () => {
    const { car, owner } = await pairedAndWarm(1);
    const { keyId, phone } = owner;
    await world.setDeviceOnline(phone, false);

    const suspended = await operatorCall('POST', `/v1/keys/${keyId}/suspend`, { reason: 'e2e: suspend' });
    expect(suspended).toMatchObject({ status: 200, body: { keyId, state: 'suspended' } });
    await carState(car, keyId, 'suspended');
    expect(car.endpoint(keyId)).toMatchObject({ hasKpersistent: false });
    await expectCarRefuses(car, phone, keyId, 'key-suspended');
    // The backend verified KEY_SUSPENDED and holds it for the phone; back in reach, the Wallet shows it suspended.
    await notified(keyId, 'KEY_SUSPENDED', 'queued');
    expect(phone.walletKey(keyId)?.keyState).toBe('active');
    await world.setDeviceOnline(phone, true);
    expect(phone.walletKey(keyId)).toMatchObject({ keyState: 'suspended', serverState: 'suspended' });
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'failed', reason: 'device-refused' });

    const resumed = await operatorCall('POST', `/v1/keys/${keyId}/resume`, { reason: 'e2e: resume' });
    expect(resumed).toMatchObject({ status: 200, body: { state: 'active' } });
    await carState(car, keyId, 'active');
    await notified(keyId, 'KEY_RESUMED', 'applied');
    expect(phone.walletKey(keyId)).toMatchObject({ keyState: 'active', serverState: 'active' });
    // The car dropped Kpersistent at the suspension: the first tap is standard, then fast again.
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast', keyId });
    expect(await phone.tap(car, 'console', 'engine-start')).toMatchObject({ result: 'granted', keyId });
    car.stopEngine();

    await world.setDeviceOnline(phone, false);
    const terminated = await operatorCall('POST', `/v1/keys/${keyId}/terminate`, { reason: 'e2e: terminate' });
    expect(terminated).toMatchObject({ status: 200, body: { state: 'terminating' } });
    await eventually(
      () => serverState(keyId),
      (state) => state === 'terminated',
    );
    expect(car.endpoint(keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    expect(car.isDenied(keyId)).toBe(true);
    await expectCarRefuses(car, phone, keyId, 'key-revoked');

    // terminated only after the car acknowledged the SET_STATE.
    const timeline = (await operatorCall<Timeline>('GET', `/v1/keys/${keyId}/timeline`)).body.entries;
    const events = timeline.map((entry) => entry.event);
    const ackOfTermination = timeline.findIndex(
      (entry) =>
        entry.event === 'command.acked-by-car' &&
        entry.details.command === 'SET_STATE' &&
        ['terminating', 'terminated'].includes(String(entry.details.state)),
    );
    expect(ackOfTermination).toBeGreaterThan(events.indexOf('key.terminating'));
    expect(events.indexOf('key.terminated')).toBeGreaterThanOrEqual(ackOfTermination);

    // The Device OEM backend got every state the key went through, in order, signed and over mTLS.
    await notified(keyId, 'KEY_TERMINATED', 'queued');
    expect(received(keyId).map((entry) => entry.notification.type)).toEqual([
      'KEY_ACTIVATED',
      'KEY_SUSPENDED',
      'KEY_RESUMED',
      'KEY_TERMINATING',
      'KEY_TERMINATED',
    ]);
    const versions = received(keyId).map((entry) => entry.notification.keyVersion);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    const inbound = world.deviceOem.calls.filter((call) => call.direction === 'inbound');
    expect(inbound.every((call) => call.peer === 'digital-key-server' && call.status === 202)).toBe(true);

    // Back in reach: remote termination deletes the key from the SE.
    await world.setDeviceOnline(phone, true);
    expectKeyDeleted(phone, keyId);
    expect(phone.keyUpdates.filter((update) => update.keyId === keyId).map((update) => update.result)).toEqual([
      'noted',
      'suspended',
      'resumed',
      'deleted',
      'unknown-key',
    ]);
  });

  it('Device OEM lost mode: the partner suspends over mTLS → the car refuses; found → resumed and accepted', async () => {
    const { car, owner } = await pairedAndWarm(2);
    const { keyId, phone } = owner;
    expect(world.deviceOem.keysOf(phone.deviceId)).toEqual([keyId]);
    // The phone is lost, in a thief's pocket in airplane mode: it never hears of the suspension.
    await world.setDeviceOnline(phone, false);

    const lost = await world.deviceOem.enterLostMode(phone.deviceId);
    expect(lost).toEqual([expect.objectContaining({ keyId, state: 'suspended' })]);
    expect(world.deviceOem.calls).toContainEqual(
      expect.objectContaining({
        direction: 'outbound',
        method: 'POST',
        path: `/partner/v1/keys/${keyId}/suspend`,
        status: 200,
      }),
    );
    await carState(car, keyId, 'suspended');
    await expectCarRefuses(car, phone, keyId, 'key-suspended');
    expect(await serverState(keyId)).toBe('suspended');
    await notified(keyId, 'KEY_SUSPENDED', 'queued');

    // Found: the owner leaves lost mode; the car lets the key in again.
    const found = await world.deviceOem.call<KeyView>('POST', `/partner/v1/keys/${keyId}/resume`, {
      reason: 'device found',
    });
    expect(found).toMatchObject({ status: 200, body: { keyId, state: 'active' } });
    await carState(car, keyId, 'active');
    await notified(keyId, 'KEY_RESUMED', 'queued');
    await world.setDeviceOnline(phone, true);
    expect(phone.keyUpdates.filter((update) => update.keyId === keyId).map((update) => update.type)).toEqual([
      'KEY_ACTIVATED',
      'KEY_SUSPENDED',
      'KEY_RESUMED',
    ]);
    expect(phone.walletKey(keyId)).toMatchObject({ keyState: 'active', serverState: 'active' });
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast', keyId });
  });

  it('terminate-all (resale): every key of the car — the owner and a friend — is refused', async () => {
    const { car, owner } = await pairedAndWarm(3);
    const friendPhone = world.device('Phone 16');
    const friendKeyId = await world.shareKey(car, owner, friendPhone, 'UNLOCK_AND_DRIVE');
    await carState(car, friendKeyId, 'active');
    await warmUp(car, friendPhone, friendKeyId);
    expect(await friendPhone.tap(car, 'console', 'engine-start')).toMatchObject({
      result: 'granted',
      keyId: friendKeyId,
    });
    car.stopEngine();
    await world.setDeviceOnline(owner.phone, false);
    await world.setDeviceOnline(friendPhone, false);

    const vin = world.vinOf(car);
    const res = await operatorCall<{ items: KeyView[] }>('POST', `/v1/vehicles/${vin}/keys/terminate-all`, {
      confirm: vin,
      reason: 'e2e: resale',
    });
    expect(res.status).toBe(200);
    expect(res.body.items.map((key) => [key.keyId, key.state]).sort()).toEqual(
      [
        [owner.keyId, 'terminating'],
        [friendKeyId, 'terminating'],
      ].sort(),
    );
    for (const keyId of [owner.keyId, friendKeyId]) {
      await eventually(
        () => serverState(keyId),
        (state) => state === 'terminated',
      );
    }
    // One SET_STATE per key reached the car. The API documents "friends first, then owners"; the
    // server currently sends the owner's first (reported to the lead; not asserted here).
    const setStates = car.telematics!.applied.filter((command) => command.cmd === 'SET_STATE');
    // Friends are revoked before their owner.
    expect(setStates.map((command) => command.keyId)).toEqual([friendKeyId, owner.keyId]);
    expect(setStates.every((command) => command.state === 'terminating' || command.state === 'terminated')).toBe(true);
    await expectCarRefuses(car, owner.phone, owner.keyId, 'key-revoked');
    await expectCarRefuses(car, friendPhone, friendKeyId, 'key-revoked');
    expect(car.endpoints().every((endpoint) => endpoint.state === 'terminated' && !endpoint.hasKpersistent)).toBe(true);

    for (const [phone, keyId] of [
      [owner.phone, owner.keyId],
      [friendPhone, friendKeyId],
    ] as const) {
      expect((await notified(keyId, 'KEY_TERMINATING', 'queued')).deviceId).toBe(phone.deviceId);
      await notified(keyId, 'KEY_TERMINATED', 'queued');
      await world.setDeviceOnline(phone, true);
      expectKeyDeleted(phone, keyId);
    }
  });

  it('car offline for the whole revocation: terminating while the car still knows the key; terminated within seconds of coverage; then refused', async () => {
    const { car, owner } = await pairedAndWarm(4);
    const { keyId, phone } = owner;
    await world.setDeviceOnline(phone, false);
    world.setOnline(car, false);

    const res = await operatorCall('POST', `/v1/keys/${keyId}/terminate`, { reason: 'e2e: car offline' });
    expect(res).toMatchObject({ status: 200, body: { state: 'terminating' } });
    // The worker keeps trying; the car hears nothing.
    await eventually(
      async () => (await operatorCall<Timeline>('GET', `/v1/keys/${keyId}/timeline`)).body.entries,
      (entries) =>
        entries.some(
          (entry) =>
            entry.event === 'command.pending' &&
            entry.details.command === 'SET_STATE' &&
            Number(entry.details.attempts) >= 2,
        ),
    );
    expect(await serverState(keyId)).toBe('terminating');
    expect(car.endpoint(keyId)).toMatchObject({ state: 'active', hasKpersistent: true });
    expect(car.telematics!.applied.some((command) => command.cmd === 'SET_STATE')).toBe(false);
    // Until the car hears of it, the car still lets the key in: why `terminating` is not `terminated`.
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast', keyId });
    await notified(keyId, 'KEY_TERMINATING', 'queued');
    expect(received(keyId).some((entry) => entry.notification.type === 'KEY_TERMINATED')).toBe(false);

    const back = Date.now();
    world.setOnline(car, true);
    await eventually(
      () => serverState(keyId),
      (state) => state === 'terminated',
      { timeoutMs: 5_000 },
    );
    expect(Date.now() - back).toBeLessThan(5_000);
    expect(car.endpoint(keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    await expectCarRefuses(car, phone, keyId, 'key-revoked');
    await notified(keyId, 'KEY_TERMINATED', 'queued');
    await world.setDeviceOnline(phone, true);
    expectKeyDeleted(phone, keyId);
  });

  it("revocation relay: telematics down, the owner's next tap carries the friend's revocation to the car; the late SET_STATE is a no-op", async () => {
    const { car, owner } = await pairedAndWarm(6);
    const friendPhone = world.device('Friend Phone 6');
    const friendKeyId = await world.shareKey(car, owner, friendPhone, 'UNLOCK_AND_DRIVE');
    await warmUp(car, friendPhone, friendKeyId);
    await world.setDeviceOnline(friendPhone, false);
    // Telematics down for the whole story: no command reaches the car, no report leaves it.
    world.setOnline(car, false);

    const res = await operatorCall('POST', `/v1/keys/${friendKeyId}/terminate`, { reason: 'e2e: relay' });
    expect(res).toMatchObject({ status: 200, body: { state: 'terminating' } });
    // The server writes the relay into the owner's private mailbox through the Device OEM.
    const relay = await notified(owner.keyId, 'REVOCATION_RELAY', 'applied');
    expect(relay.notification.revocationRelay?.keyIds).toEqual([friendKeyId]);
    expect(owner.phone.keyUpdates).toContainEqual(
      expect.objectContaining({ keyId: owner.keyId, type: 'REVOCATION_RELAY', result: 'relay-written' }),
    );
    // Before the owner's tap the car still lets the friend in: the relay has not reached it.
    expect(await friendPhone.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', keyId: friendKeyId });

    // The owner's next transaction: the car reads the relay and revokes the friend on the spot.
    expect(await owner.phone.tap(car, 'door', 'lock')).toMatchObject({
      result: 'granted',
      transaction: 'fast',
      keyId: owner.keyId,
    });
    expect(car.endpoint(friendKeyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    expect(car.events.entries()).toContainEqual(
      expect.objectContaining({ kind: 'key-list', change: 'denied', keyId: friendKeyId, source: 'relay' }),
    );
    await expectCarRefuses(car, friendPhone, friendKeyId, 'key-revoked');
    expect(car.telematics!.applied.some((command) => command.cmd === 'SET_STATE')).toBe(false);
    expect(await serverState(friendKeyId)).toBe('terminating');
    expect(car.pendingReports).toContainEqual(
      expect.objectContaining({ type: 'KEY_REVOKED_BY_RELAY', keyId: friendKeyId }),
    );

    // Coverage returns: the report and the SET_STATE race; whichever lands first completes the
    // revocation, the other is acknowledged without a second effect.
    world.setOnline(car, true);
    await eventually(
      () => serverState(friendKeyId),
      (state) => state === 'terminated',
      { timeoutMs: 5_000 },
    );
    await eventually(
      () => car.telematics!.applied.filter((command) => command.cmd === 'SET_STATE' && command.keyId === friendKeyId),
      (applied) => applied.length === 1,
    );
    await eventually(
      () => car.reporter?.results.find((result) => result.report.keyId === friendKeyId),
      (result) => result !== undefined,
    );
    const reported = car.reporter!.results.find((result) => result.report.keyId === friendKeyId)!;
    expect(reported.status).toBe(200);
    expect(['applied', 'no-op']).toContain(reported.outcome);
    expect(
      car.events.entries().filter((e) => e.kind === 'key-list' && e.keyId === friendKeyId && e.change === 'denied'),
    ).toHaveLength(1);
    await notified(friendKeyId, 'KEY_TERMINATED', 'queued');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received(friendKeyId).filter((entry) => entry.notification.type === 'KEY_TERMINATED')).toHaveLength(1);
    const timeline = (await operatorCall<Timeline>('GET', `/v1/keys/${friendKeyId}/timeline`)).body.entries;
    expect(timeline.filter((entry) => entry.event === 'key.terminated')).toHaveLength(1);
    await expectCarRefuses(car, friendPhone, friendKeyId, 'key-revoked');
    await world.setDeviceOnline(friendPhone, true);
    expectKeyDeleted(friendPhone, friendKeyId);
  });

  it("car HMI: the owner deletes a friend in the car's screen → refused at once; the server revokes it and the friend's phone deletes the key", async () => {
    const { car, owner } = await pairedAndWarm(7);
    const friendPhone = world.device('Friend Phone 7');
    const friendKeyId = await world.shareKey(car, owner, friendPhone, 'UNLOCK_AND_DRIVE');
    await warmUp(car, friendPhone, friendKeyId);
    // Out of reach of its maker's backend, the friend's phone still presents the key.
    await world.setDeviceOnline(friendPhone, false);

    car.deleteAtHmi(friendKeyId);
    expect(car.endpoint(friendKeyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    await expectCarRefuses(car, friendPhone, friendKeyId, 'key-revoked');
    // The car reports it; the server revokes through the normal path; the car acks the SET_STATE.
    await eventually(
      () => serverState(friendKeyId),
      (state) => state === 'terminated',
    );
    expect(car.reporter!.results).toContainEqual(
      expect.objectContaining({
        report: expect.objectContaining({ type: 'KEY_DELETED_AT_CAR', keyId: friendKeyId }) as unknown,
        outcome: 'applied',
      }),
    );
    const timeline = (await operatorCall<Timeline>('GET', `/v1/keys/${friendKeyId}/timeline`)).body.entries;
    expect(timeline.find((entry) => entry.event === 'key.terminating')?.details).toMatchObject({
      actor: `vehicle:${world.vinOf(car)}`,
      reason: 'deleted at the car',
    });
    // The remote termination request reaches the friend's phone when it is back in reach.
    await notified(friendKeyId, 'KEY_TERMINATING', 'queued');
    await world.setDeviceOnline(friendPhone, true);
    expectKeyDeleted(friendPhone, friendKeyId);
    // The owner key is untouched.
    expect(await owner.phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId: owner.keyId });
  });

  it('owner device: the owner deletes a friend key through its maker → the car refuses it, the friend phone deletes it', async () => {
    const { car, owner } = await pairedAndWarm(8);
    const friendPhone = world.device('Friend Phone 8');
    const friendKeyId = await world.shareKey(car, owner, friendPhone, 'UNLOCK_ONLY');
    await warmUp(car, friendPhone, friendKeyId);
    await world.setDeviceOnline(friendPhone, false);

    const view = await owner.phone.revokeSharedKey(friendKeyId);
    expect(view.state).toBe('terminating');
    await carState(car, friendKeyId, 'terminated');
    await expectCarRefuses(car, friendPhone, friendKeyId, 'key-revoked');
    await eventually(
      () => serverState(friendKeyId),
      (state) => state === 'terminated',
    );
    await notified(friendKeyId, 'KEY_TERMINATED');
    await world.setDeviceOnline(friendPhone, true);
    expectKeyDeleted(friendPhone, friendKeyId);
  });

  it('device: a key deleted in the Wallet offline is disabled at once; the signed proof revokes it at the car when the phone is back online', async () => {
    const { car, owner } = await pairedAndWarm(9);
    const { keyId, phone } = owner;
    await world.setDeviceOnline(phone, false);

    expect(await phone.deleteKey(keyId)).toBe('queued');
    // The SE refuses to use the key from this moment, network or not.
    expect(phone.secureElement.keys().find((key) => key.keyId === keyId)?.state ?? 'gone').not.toBe('active');
    expect(await phone.tap(car, 'door', 'unlock')).not.toMatchObject({ result: 'granted' });
    expect(phone.unsentTerminations).toEqual([keyId]);
    expect(await serverState(keyId)).toBe('active');

    await world.setDeviceOnline(phone, true);
    expect(phone.unsentTerminations).toEqual([]);
    await eventually(
      () => serverState(keyId),
      (state) => state === 'terminated',
    );
    expect(car.endpoint(keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    const timeline = (await operatorCall<Timeline>('GET', `/v1/keys/${keyId}/timeline`)).body.entries;
    expect(timeline.find((entry) => entry.event === 'key.terminating')?.details).toMatchObject({
      deviceAttested: true,
    });
    await notified(keyId, 'KEY_TERMINATED');
  });

  it("the car deletes the endpoint's Kpersistent the moment it applies SET_STATE terminated: the old one opens nothing", async () => {
    const { car, owner } = await pairedAndWarm(5);
    const { keyId, phone } = owner;
    await world.setDeviceOnline(phone, false);
    let kpersistentWhenDenied: boolean | undefined;
    const unsubscribe = car.events.subscribe((event) => {
      if (event.kind === 'key-list' && event.keyId === keyId && event.change === 'denied') {
        kpersistentWhenDenied = car.endpoint(keyId)?.hasKpersistent;
      }
    });
    const transactionsBefore = car.events.transactions().length;

    expect((await operatorCall('POST', `/v1/keys/${keyId}/terminate`, {})).status).toBe(200);
    await carState(car, keyId, 'terminated');
    unsubscribe();
    expect(kpersistentWhenDenied).toBe(false);
    const changes = car.events
      .entries()
      .filter((event): event is KeyListEvent => event.kind === 'key-list' && event.keyId === keyId)
      .slice(-2);
    expect(changes).toEqual([
      expect.objectContaining({ change: 'kpersistent-deleted', source: 'telematics' }),
      expect.objectContaining({ change: 'denied', source: 'telematics', state: 'terminated' }),
    ]);
    expect(car.events.transactions()).toHaveLength(transactionsBefore);

    // The phone never heard of it and still holds the old Kpersistent: its fast cryptogram
    // matches nothing, the car goes on to AUTH1, identifies the key and refuses it.
    expect(phone.secureElement.key(keyId)).toMatchObject({ state: 'active', hasKpersistent: true });
    const attempt = await phone.tap(car, 'door', 'unlock');
    expect(attempt).toMatchObject({ result: 'denied', transaction: 'standard', reason: 'key-revoked', keyId });
    expect(car.events.lastTransaction()).toMatchObject({
      action: 'unlock',
      transaction: 'standard',
      result: 'denied',
      reason: 'key-revoked',
      keyId,
      deviceNotified: true,
    });
    expect(car.ecuState.locked).toBe(true);
    expect(phone.secureElement.outcomes.at(-1)).toMatchObject({
      keyId,
      success: false,
      reason: 'key-suspended-or-revoked',
    });
  });
});
