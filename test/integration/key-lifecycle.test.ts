import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { P256KeyPair } from '../../src/protocol/crypto/p256.js';
import { adminRequest, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey, terminationAttestation } from '../support/owner-key.js';
import { TestCarFleet, type TestCar } from '../support/test-car.js';

interface KeyView {
  keyId: string;
  state: string;
  version: number;
  vin: string;
}

describe('key lifecycle: suspend, resume, terminate through the delivery path', () => {
  let system: TestSystem;
  let operator: string;
  const fleet = new TestCarFleet(() => system);

  beforeAll(async () => {
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '1024' } });
    operator = await system.operatorToken(['vehicles:write', 'keys:read', 'keys:write']);
  });
  afterAll(async () => {
    await fleet.close();
    await system?.stop();
  });

  const carWithOwner = (n: number) => fleet.withOwner(n);

  const operatorCall = (operation: string, keyId: string, body: object = {}) =>
    adminRequest<KeyView & { currentState?: string }>(system, 'POST', `/v1/keys/${keyId}/${operation}`, {
      token: operator,
      body,
    });
  const getKey = async (keyId: string) =>
    (await adminRequest<KeyView>(system, 'GET', `/v1/keys/${keyId}`, { token: operator })).body;
  const carCommands = (car: TestCar, keyId: string) =>
    car.appliedCommands.filter((c) => c.cmd === 'SET_STATE' && c.keyId === keyId).map((c) => c.state);

  it('suspends and resumes: the car is told each state in order, illegal moves get 409 with the current state', async () => {
    const { car, keyId } = await carWithOwner(1);
    const before = await getKey(keyId);
    const suspended = await operatorCall('suspend', keyId, { reason: 'lost phone' });
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({ state: 'suspended', version: before.version + 1 });
    const again = await operatorCall('suspend', keyId);
    expect(again.status).toBe(409);
    expect(again.body.currentState).toBe('suspended');
    expect((await operatorCall('resume', keyId)).body.state).toBe('active');
    await eventually(
      () => carCommands(car, keyId),
      (states) => states.length === 2,
    );
    expect(carCommands(car, keyId)).toEqual(['suspended', 'active']);
  });

  it('terminates: terminating until the car acks, then terminated; nothing revives it', async () => {
    const { car, keyId } = await carWithOwner(2);
    const res = await operatorCall('terminate', keyId, { reason: 'sold' });
    expect(res.body.state).toBe('terminating');
    const final = await eventually(
      () => getKey(keyId),
      (key) => key.state === 'terminated',
    );
    expect(final.state).toBe('terminated');
    expect(carCommands(car, keyId)).toEqual(['terminated']);
    expect((await operatorCall('resume', keyId)).status).toBe(409);
    expect((await operatorCall('terminate', keyId)).status).toBe(409);
  });

  it('stays terminating while the car is offline and completes when it returns', async () => {
    const { car, keyId } = await carWithOwner(3);
    car.behaviour = 'offline';
    await operatorCall('terminate', keyId);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await getKey(keyId)).state).toBe('terminating');
    car.behaviour = 'online';
    await eventually(
      () => getKey(keyId),
      (key) => key.state === 'terminated',
    );
  });

  it('lets the Device OEM act only on its own keys', async () => {
    const { keyId } = await carWithOwner(4);
    const foreign = await mtlsRequest(system, 'POST', `/partner/v1/keys/${keyId}/suspend`, {
      identity: system.pki.otherPartner,
      body: {},
    });
    expect(foreign.status).toBe(404);
    const own = await mtlsRequest<{ state: string }>(system, 'POST', `/partner/v1/keys/${keyId}/suspend`, {
      identity: system.pki.partner,
      body: { reason: 'lost mode' },
    });
    expect(own.status).toBe(200);
    expect(own.body.state).toBe('suspended');
  });

  it('takes a device-deleted key with its termination attestation, refusing one the key did not sign', async () => {
    const car = await fleet.provision(7);
    const endpoint = P256KeyPair.generate();
    const { keyId } = await activeOwnerKey(system, car, Buffer.from(endpoint.publicPoint));
    const proof = (signer: P256KeyPair) => terminationAttestation(car.vehicleIdentifier, keyId, signer, 3n);
    const send = (attestation: string) =>
      mtlsRequest<{ state: string }>(system, 'POST', `/partner/v1/keys/${keyId}/terminate`, {
        identity: system.pki.partner,
        body: { reason: 'deleted in wallet', terminationAttestation: attestation },
      });
    const forged = await send(proof(P256KeyPair.generate()));
    expect(forged.status).toBe(403);
    expect((await getKey(keyId)).state).toBe('active');
    const genuine = await send(proof(endpoint));
    expect(genuine.status).toBe(200);
    expect(genuine.body.state).toBe('terminating');
    const rows = await system.server.dataSource.query<Array<{ details: Record<string, unknown> }>>(
      `SELECT details FROM audit_events WHERE action = 'key.terminating' AND subject_id = $1`,
      [keyId],
    );
    expect(rows[0].details).toMatchObject({ deviceAttested: true, attestationCounter: '3' });
  });

  it('terminates every key of a vehicle only with the VIN confirmed', async () => {
    const { car, keyId } = await carWithOwner(5);
    const unconfirmed = await adminRequest(system, 'POST', `/v1/vehicles/${car.vin}/keys/terminate-all`, {
      token: operator,
      body: { confirm: 'WDD1234567A999999' },
    });
    expect(unconfirmed.status).toBe(400);
    expect((await getKey(keyId)).state).toBe('active');
    const all = await adminRequest<{ items: KeyView[] }>(system, 'POST', `/v1/vehicles/${car.vin}/keys/terminate-all`, {
      token: operator,
      body: { confirm: car.vin, reason: 'stolen' },
    });
    expect(all.status).toBe(200);
    expect(all.body.items.map((k) => k.state)).toEqual(['terminating']);
  });

  it('shows every state change and every hop in the timeline', async () => {
    const { keyId } = await carWithOwner(6);
    await operatorCall('suspend', keyId);
    await eventually(
      async () =>
        (
          await adminRequest<{ entries: Array<{ event: string }> }>(system, 'GET', `/v1/keys/${keyId}/timeline`, {
            token: operator,
          })
        ).body.entries.map((e) => e.event),
      (events) => events.filter((e) => e === 'command.acked-by-car').length >= 2,
    );
    const timeline = await adminRequest<{ entries: Array<{ event: string; source: string }> }>(
      system,
      'GET',
      `/v1/keys/${keyId}/timeline`,
      { token: operator },
    );
    const events = timeline.body.entries.map((e) => e.event);
    for (const expected of [
      'key.registered',
      'key.activated',
      'key.suspended',
      'command.queued',
      'command.acked-by-car',
    ]) {
      expect(events).toContain(expected);
    }
    expect(events.indexOf('key.registered')).toBeLessThan(events.indexOf('key.suspended'));
  });
});
