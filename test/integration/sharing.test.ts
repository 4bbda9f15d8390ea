import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { P256KeyPair } from '../../src/protocol/crypto/p256.js';
import { ENTITLEMENT_PROFILES, decodeEntitlements, encodeEntitlements } from '../../src/protocol/entitlements.js';
import { signFriendAttestation } from '../../src/protocol/friend-attestation.js';
import { adminRequest, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey, endpointChain, type Registration } from '../support/owner-key.js';
import { TestCar } from '../support/test-car.js';

const HOUR = 3_600_000;
const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

describe('sharing: friend keys registered with the owner-signed attestation (server side)', () => {
  let system: TestSystem;
  const cars: TestCar[] = [];

  beforeAll(async () => {
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '1024', FRIEND_KEY_LIMIT: '2' } });
  });
  afterAll(async () => {
    await Promise.all(cars.map((car) => car.close()));
    await system?.stop();
  });

  async function ownedCar(n: number) {
    const car = await TestCar.provision(system, n);
    cars.push(car);
    const owner = P256KeyPair.generate();
    const registration = await activeOwnerKey(system, car, Buffer.from(owner.publicPoint));
    return { car, owner, ownerKeyId: registration.keyId };
  }

  async function shareRequest(
    car: TestCar,
    signer: P256KeyPair,
    ownerKeyId: string,
    options: { entitlements?: Buffer; notAfter?: Date; attestedKey?: Buffer } = {},
  ) {
    const friend = P256KeyPair.generate();
    const { chain } = await endpointChain(system, car.vehicleIdentifier, {
      key: Buffer.from(friend.publicPoint),
      role: 'friend',
    });
    const attestation = signFriendAttestation(
      {
        vehicleIdentifier: Buffer.from(car.vehicleIdentifier, 'hex'),
        endpointPublicKey: options.attestedKey ?? Buffer.from(friend.publicPoint),
        entitlements: options.entitlements ?? encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY),
        notBefore: wholeSeconds(Date.now() - HOUR),
        notAfter: options.notAfter ?? wholeSeconds(Date.now() + 7 * 24 * HOUR),
        ownerKeyId: Buffer.from(ownerKeyId, 'hex'),
      },
      signer,
    );
    return mtlsRequest<Registration & { detail?: string }>(system, 'POST', '/partner/v1/keys', {
      identity: system.pki.partner,
      body: {
        vehicleId: car.vehicleIdentifier,
        role: 'friend',
        certificateChain: chain,
        attestation: attestation.toString('base64'),
      },
    });
  }

  const keyState = async (keyId: string) =>
    (await mtlsRequest<{ state: string }>(system, 'GET', `/partner/v1/keys/${keyId}`, { identity: system.pki.partner }))
      .body.state;

  it('lists the profiles the owner can share with', async () => {
    const { car } = await ownedCar(1);
    const res = await mtlsRequest<{ items: Array<{ name: string; entitlementsTlv: string }> }>(
      system,
      'GET',
      `/partner/v1/vehicles/${car.vehicleIdentifier}/access-profiles`,
      { identity: system.pki.partner },
    );
    expect(res.status).toBe(200);
    expect(res.body.items.map((p) => p.name)).toEqual(['OWNER', 'RESTRICTED_DRIVE', 'UNLOCK_AND_DRIVE', 'UNLOCK_ONLY']);
    const missing = await mtlsRequest(system, 'GET', '/partner/v1/vehicles/0000000000000000/access-profiles', {
      identity: system.pki.partner,
    });
    expect(missing.status).toBe(404);
  });

  it('registers a friend key, sends ADD_KEY with its entitlements, and activates it when the car has it', async () => {
    const { car, owner, ownerKeyId } = await ownedCar(2);
    const res = await shareRequest(car, owner, ownerKeyId);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: 'friend', state: 'pending' });
    await eventually(
      () => car.appliedCommands.find((c) => c.cmd === 'ADD_KEY' && c.keyId === res.body.keyId),
      (c) => c !== undefined,
    );
    const add = car.appliedCommands.find((c) => c.keyId === res.body.keyId)!;
    expect(add).toMatchObject({ role: 'friend' });
    // The profile's rights, narrowed to the share's window (what the car enforces).
    const granted = decodeEntitlements(Buffer.from(add.entitlements!, 'hex'));
    expect(granted.rights).toBe(ENTITLEMENT_PROFILES.UNLOCK_ONLY.rights);
    expect(granted.validity!.notAfter - granted.validity!.notBefore).toBe(7 * 24 * 3600 + 3600);
    await eventually(
      () => keyState(res.body.keyId),
      (state) => state === 'active',
    );
  });

  it('activates a friend the car enrolled offline when the car reports it, once', async () => {
    const { car, owner, ownerKeyId } = await ownedCar(3);
    car.behaviour = 'offline';
    const res = await shareRequest(car, owner, ownerKeyId, {
      entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.RESTRICTED_DRIVE),
    });
    expect(res.status).toBe(201);
    const report = () =>
      mtlsRequest<{ results: Array<{ outcome: string; state: string }> }>(system, 'POST', '/vehicle/v1/events', {
        identity: car.identity,
        body: { events: [{ type: 'FRIEND_ENROLLED', keyId: res.body.keyId, occurredAt: new Date().toISOString() }] },
      });
    const first = await report();
    expect(first.status).toBe(200);
    expect(first.body.results).toEqual([expect.objectContaining({ outcome: 'applied', state: 'active' })]);
    expect((await report()).body.results[0].outcome).toBe('no-op');
    expect(await keyState(res.body.keyId)).toBe('active');
    const other = cars[0];
    const foreign = await mtlsRequest<{ results: Array<{ outcome: string }> }>(system, 'POST', '/vehicle/v1/events', {
      identity: other.identity,
      body: { events: [{ type: 'KEY_DELETED_AT_CAR', keyId: res.body.keyId }] },
    });
    expect(foreign.body.results[0].outcome).toBe('unknown-key');
    car.behaviour = 'online';
  });

  it('refuses attestations it cannot trust, re-sharing, unknown profiles, ended windows and too many friends', async () => {
    const { car, owner, ownerKeyId } = await ownedCar(4);
    const stranger = P256KeyPair.generate();
    const forged = await shareRequest(car, stranger, ownerKeyId);
    expect(forged.status).toBe(400);
    expect(forged.text).toContain('signature');
    const reshare = await shareRequest(car, owner, ownerKeyId, {
      entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.OWNER),
    });
    expect(reshare.status).toBe(400);
    expect(reshare.text).toContain('re-share');
    const custom = await shareRequest(car, owner, ownerKeyId, { entitlements: encodeEntitlements({ rights: 0x03 }) });
    expect(custom.status).toBe(400);
    expect(custom.text).toContain('access profiles');
    const ended = await shareRequest(car, owner, ownerKeyId, { notAfter: wholeSeconds(Date.now() - 60_000) });
    expect(ended.status).toBe(400);
    const swapped = await shareRequest(car, owner, ownerKeyId, {
      attestedKey: Buffer.from(P256KeyPair.generate().publicPoint),
    });
    expect(swapped.status).toBe(400);
    expect((await shareRequest(car, owner, ownerKeyId)).status).toBe(201);
    expect((await shareRequest(car, owner, ownerKeyId)).status).toBe(201);
    const third = await shareRequest(car, owner, ownerKeyId);
    expect(third.status).toBe(409);
    expect(third.text).toContain('limit 2');
  });

  it("changes a friend's access profile and tells the car (SET_ENTITLEMENTS); owners and sharing rights are refused", async () => {
    const { car, owner, ownerKeyId } = await ownedCar(6);
    const friend = (await shareRequest(car, owner, ownerKeyId)).body.keyId;
    const operator = await system.operatorToken(['keys:read', 'keys:write']);
    const profiles = await adminRequest<{ items: Array<{ id: string; name: string }> }>(
      system,
      'GET',
      '/v1/access-profiles',
      {
        token: operator,
      },
    );
    const id = (name: string) => profiles.body.items.find((p) => p.name === name)!.id;
    const change = (keyId: string, name: string) =>
      adminRequest<{ state: string }>(system, 'PUT', `/v1/keys/${keyId}/access-profile`, {
        token: operator,
        body: { accessProfileId: id(name), reason: 'can drive now' },
      });
    expect((await change(friend, 'UNLOCK_AND_DRIVE')).status).toBe(200);
    await eventually(
      () => car.appliedCommands.find((c) => c.cmd === 'SET_ENTITLEMENTS' && c.keyId === friend),
      (c) => c !== undefined,
    );
    const changed = decodeEntitlements(
      Buffer.from(car.appliedCommands.find((c) => c.cmd === 'SET_ENTITLEMENTS')!.entitlements!, 'hex'),
    );
    expect(changed.rights).toBe(ENTITLEMENT_PROFILES.UNLOCK_AND_DRIVE.rights);
    expect(changed.validity).toBeDefined();
    expect((await change(ownerKeyId, 'UNLOCK_ONLY')).status).toBe(409);
    expect((await change(friend, 'OWNER')).status).toBe(400);
  });

  it('revokes a friend the owner deleted at the car, and all friends with the owner key', async () => {
    const { car, owner, ownerKeyId } = await ownedCar(5);
    const friendA = (await shareRequest(car, owner, ownerKeyId)).body.keyId;
    const friendB = (await shareRequest(car, owner, ownerKeyId)).body.keyId;
    await eventually(
      () => keyState(friendB),
      (state) => state === 'active',
    );
    const deleted = await mtlsRequest<{ results: Array<{ outcome: string; state: string }> }>(
      system,
      'POST',
      '/vehicle/v1/events',
      {
        identity: car.identity,
        body: { events: [{ type: 'KEY_DELETED_AT_CAR', keyId: friendA }] },
      },
    );
    expect(deleted.body.results[0]).toMatchObject({ outcome: 'applied', state: 'terminating' });
    await eventually(
      () => keyState(friendA),
      (state) => state === 'terminated',
    );
    const operator = await system.operatorToken(['keys:write']);
    const terminated = await adminRequest(system, 'POST', `/v1/keys/${ownerKeyId}/terminate`, {
      token: operator,
      body: {},
    });
    expect(terminated.status).toBe(200);
    expect(await keyState(friendB)).toBe('terminating');
    await eventually(
      () => keyState(friendB),
      (state) => state === 'terminated',
    );
    await eventually(
      () => keyState(ownerKeyId),
      (state) => state === 'terminated',
    );
    const order = car.appliedCommands.filter((c) => c.cmd === 'SET_STATE').map((c) => c.keyId);
    expect(order.indexOf(friendB)).toBeLessThan(order.indexOf(ownerKeyId));
  });
});
