import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { P256KeyPair } from '../../src/protocol/crypto/p256.js';
import {
  decodeSignedFriendAttestation,
  encodeFriendAttestation,
  signFriendAttestation,
} from '../../src/protocol/friend-attestation.js';
import { TLV } from '../../src/protocol/tlv.js';
import { PartnerCallError } from '../../src/sim/device-oem/device-oem-backend.js';
import { SecureElementError } from '../../src/sim/secure-element/secure-element-error.js';
import type { SimulatedDevice } from '../../src/sim/device/simulated-device.js';
import type { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import { adminRequest, eventually } from '../support/harness.js';
import { SimulatedWorld, type PairedOwner } from '../support/simulated-world.js';

const HOUR = 3_600_000;
const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/**
 * Sharing end to end (PROTOCOL.md §7): the real api and worker, a car behind the real telematics
 * endpoint that reports to the server over mTLS, the mocked Device OEM backend relaying the
 * sealed invitation, and phones whose SEs create, attest and present the friend keys.
 */
describe('sharing, end to end', () => {
  let world: SimulatedWorld;
  let car: SimulatedVehicle;
  let owner: PairedOwner;

  beforeAll(async () => {
    world = await SimulatedWorld.startWithSystem({ env: { PAIRING_SCRYPT_N: '1024' } });
    car = await world.provisionCar(1);
    owner = await world.pairOwner(car);
  });
  afterAll(async () => {
    await world?.close();
  });

  /** The server has no record of the key (the partner API answers 404). */
  async function unknownToServer(keyId: string): Promise<void> {
    await expect(world.deviceOem.getKey(keyId)).rejects.toMatchObject({ status: 404 });
  }

  /** The friend taps; the car refuses with this CONTROL FLOW reason and records nothing. */
  async function carRefuses(phone: SimulatedDevice, keyId: string, detail: RegExp): Promise<void> {
    const actuations = car.actuations;
    const pending = car.pendingReports.length;
    const tap = await phone.tap(car, 'door', 'unlock');
    expect(tap).toMatchObject({ result: 'denied', reason: 'key-unknown' });
    expect(tap.event.detail).toMatch(detail);
    expect(tap.event.deviceNotified).toBe(true);
    expect(car.endpoint(keyId)).toBeUndefined();
    expect(car.actuations).toBe(actuations);
    expect(car.pendingReports.length).toBe(pending);
  }

  it('relays the invitation as ciphertext; PIN and mailbox binding hold; UNLOCK_ONLY unlocks but cannot start', async () => {
    const friend = world.device('Friend Phone');
    const link = owner.phone.createInvitation(owner.keyId, {
      profileName: 'UNLOCK_ONLY',
      entitlements: await world.accessProfile(car, 'UNLOCK_ONLY'),
      pin: '482913',
    });
    const url = new URL(link);
    const mailboxId = url.pathname.split('/').pop()!;
    const secret = Buffer.from(url.hash.slice(1), 'base64url');
    const stored = world.deviceOem.invitations.stored(mailboxId)!;
    expect(stored.envelope.includes(secret)).toBe(false);
    expect(stored.envelope.includes(car.vehicleIdentifier)).toBe(false);

    expect(() => friend.acceptInvitation(link, '000000')).toThrow(expect.objectContaining({ failure: 'wrong-pin' }));
    expect(friend.secureElement.keys()).toHaveLength(0);
    // The first reader bound the mailbox: another phone is refused even with the right PIN.
    const intruder = world.device('Intruder Phone');
    expect(() => intruder.acceptInvitation(link, '482913')).toThrow(
      expect.objectContaining({
        failure: 'mailbox-refused',
        message: expect.stringMatching(/bound-to-another-device/),
      }),
    );
    expect(intruder.secureElement.keys()).toHaveLength(0);

    const request = friend.acceptInvitation(link, '482913');
    const attestation = owner.phone.attestFriendKey(owner.keyId, request);
    const wallet = await friend.registerFriendKey(request.keyId, attestation);
    expect(wallet).toMatchObject({ role: 'friend', state: 'registered' });
    expect(wallet.ktsReceiptIssuedAtMs).toBeGreaterThan(0);
    await world.waitForState(request.keyId, 'active');
    await eventually(
      () => car.endpoint(request.keyId)?.state,
      (state) => state === 'active',
    );

    expect(await friend.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId: request.keyId });
    const start = await friend.tap(car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'denied', reason: 'right-missing', keyId: request.keyId });
    expect(car.ecuState.engineRunning).toBe(false);
    // Known from ADD_KEY: nothing to report.
    expect(car.pendingReports).toHaveLength(0);

    // The operator upgrades the friend to UNLOCK_AND_DRIVE: SET_ENTITLEMENTS reaches the car,
    // ACCESS_PROFILE_CHANGED reaches the friend's phone through the Device OEM backend.
    const operator = await world.system.operatorToken(['keys:read', 'keys:write']);
    const profiles = await adminRequest<{ items: Array<{ id: string; name: string }> }>(
      world.system,
      'GET',
      '/v1/access-profiles',
      { token: operator },
    );
    const upgrade = await adminRequest(world.system, 'PUT', `/v1/keys/${request.keyId}/access-profile`, {
      token: operator,
      body: { accessProfileId: profiles.body.items.find((p) => p.name === 'UNLOCK_AND_DRIVE')!.id },
    });
    expect(upgrade.status).toBe(200);
    await eventually(
      () => car.telematics!.applied.some((c) => c.cmd === 'SET_ENTITLEMENTS' && c.keyId === request.keyId),
      (seen) => seen,
    );
    expect(await friend.tap(car, 'console', 'engine-start')).toMatchObject({ result: 'granted', keyId: request.keyId });
    expect(car.ecuState.engineRunning).toBe(true);
    await eventually(
      () =>
        world.deviceOem.received.find(
          (entry) => entry.notification.type === 'ACCESS_PROFILE_CHANGED' && entry.notification.keyId === request.keyId,
        )?.disposition,
      (disposition) => disposition === 'applied',
    );
  });

  it('enrolls a RESTRICTED_DRIVE friend offline at the first tap, then reports it when back online', async () => {
    const friend = world.device('Friend Phone 2');
    world.setOnline(car, false);
    const keyId = await world.shareByInvitation(car, owner, friend, 'RESTRICTED_DRIVE');
    expect(await world.keyState(keyId)).toBe('pending');
    expect(car.endpoint(keyId)).toBeUndefined();

    const start = await friend.tap(car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(start.event.driveLimits).toEqual({ maxSpeedKmh: 105 });
    expect(car.ecuState).toMatchObject({ engineRunning: true, driveLimits: { maxSpeedKmh: 105 } });
    expect(car.endpoint(keyId)).toMatchObject({ role: 'friend', state: 'active' });
    expect(car.endpoints().find((e) => e.keyId === keyId)?.entitlements.maxSpeedKmh).toBe(105);
    expect(car.pendingReports).toEqual([expect.objectContaining({ type: 'FRIEND_ENROLLED', keyId })]);
    car.stopEngine();
    // Known now: the next unlock is an ordinary transaction, no second enrollment.
    expect(await friend.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId });
    expect(car.pendingReports).toHaveLength(1);
    expect(await world.keyState(keyId)).toBe('pending');

    world.setOnline(car, true);
    await world.waitForState(keyId, 'active');
    await eventually(
      () => car.pendingReports.length,
      (n) => n === 0,
    );
    // Whichever came first (the report or the server's retried ADD_KEY), the other was a no-op.
    expect(car.reporter?.results.at(-1)).toMatchObject({ status: 200, report: { keyId } });
    expect(['applied', 'no-op']).toContain(car.reporter?.results.at(-1)?.outcome);
    expect(car.endpoint(keyId)).toMatchObject({ role: 'friend', state: 'active' });
  });

  it('refuses a forged, tampered or expired attestation at the server and at the car, recording nothing', async () => {
    const entitlements = await world.accessProfile(car, 'UNLOCK_ONLY');
    const invite = (phone: SimulatedDevice) =>
      phone.acceptInvitation(owner.phone.createInvitation(owner.keyId, { profileName: 'UNLOCK_ONLY', entitlements }));

    // Signed by a key that is not the car's owner (it claims the owner's key id).
    const forger = world.device('Forger Phone');
    const forgedRequest = invite(forger);
    const forged = signFriendAttestation(
      {
        vehicleIdentifier: car.vehicleIdentifier,
        endpointPublicKey: forgedRequest.endpointPublicKey,
        entitlements,
        notBefore: wholeSeconds(Date.now() - HOUR),
        notAfter: wholeSeconds(Date.now() + HOUR),
        ownerKeyId: Buffer.from(owner.keyId, 'hex'),
      },
      P256KeyPair.generate(),
    );
    const forgedRefusal = await forger.registerFriendKey(forgedRequest.keyId, forged).catch((error: unknown) => error);
    expect(forgedRefusal).toBeInstanceOf(PartnerCallError);
    expect(forgedRefusal).toMatchObject({ status: 400, message: expect.stringMatching(/signature/) });
    await unknownToServer(forgedRequest.keyId);
    await carRefuses(forger, forgedRequest.keyId, /owner signature does not verify/);

    // The owner's real attestation with the entitlements swapped for more rights.
    const tamperer = world.device('Tamperer Phone');
    const tamperedRequest = invite(tamperer);
    const genuine = decodeSignedFriendAttestation(owner.phone.attestFriendKey(owner.keyId, tamperedRequest));
    const tampered = TLV(
      0x30,
      encodeFriendAttestation({
        ...genuine.attestation,
        entitlements: await world.accessProfile(car, 'UNLOCK_AND_DRIVE'),
      }),
      TLV(0x04, genuine.signature),
    );
    const tamperedRefusal = await tamperer
      .registerFriendKey(tamperedRequest.keyId, tampered)
      .catch((error: unknown) => error);
    expect(tamperedRefusal).toMatchObject({ status: 400, message: expect.stringMatching(/signature/) });
    await unknownToServer(tamperedRequest.keyId);
    await carRefuses(tamperer, tamperedRequest.keyId, /owner signature does not verify/);

    // Signed by the owner, but the window has ended.
    const late = world.device('Late Phone');
    const lateRequest = invite(late);
    const expired = owner.phone.secureElement.signFriendAttestation(owner.keyId, {
      endpointPublicKey: lateRequest.endpointPublicKey,
      entitlements,
      notBefore: wholeSeconds(Date.now() - 2 * HOUR),
      notAfter: wholeSeconds(Date.now() - HOUR),
    });
    const expiredRefusal = await late.registerFriendKey(lateRequest.keyId, expired).catch((error: unknown) => error);
    expect(expiredRefusal).toMatchObject({ status: 400 });
    await unknownToServer(lateRequest.keyId);
    const tap = await late.tap(car, 'door', 'unlock');
    expect(tap).toMatchObject({ result: 'denied', reason: 'key-unknown' });
    expect(tap.event.detail).toMatch(/outside the attestation window/);
    expect(late.secureElement.outcomes.at(-1)).toMatchObject({ success: false, reason: 'entitlement-denied' });
    expect(car.endpoint(lateRequest.keyId)).toBeUndefined();
  });

  it('a friend cannot re-share: the phone and its SE refuse', async () => {
    const friend = world.device('Friend Phone 3');
    const keyId = await world.shareByInvitation(car, owner, friend, 'UNLOCK_AND_DRIVE');
    const entitlements = await world.accessProfile(car, 'UNLOCK_ONLY');
    expect(() => friend.createInvitation(keyId, { profileName: 'UNLOCK_ONLY', entitlements })).toThrow(
      expect.objectContaining({ failure: 'not-owner' }),
    );
    expect(() =>
      friend.secureElement.signFriendAttestation(keyId, {
        endpointPublicKey: Buffer.from(P256KeyPair.generate().publicPoint),
        entitlements,
        notBefore: wholeSeconds(Date.now()),
        notAfter: wholeSeconds(Date.now() + HOUR),
      }),
    ).toThrow(SecureElementError);
  });

  it('refuses a sixth friend at the server (FRIEND_KEY_LIMIT 5)', async () => {
    // Three friends so far on this car; two more reach the limit.
    for (const n of [4, 5]) await world.shareByInvitation(car, owner, world.device(`Friend Phone ${n}`), 'UNLOCK_ONLY');
    const sixth = world.device('Friend Phone 6');
    const refusal = await world.shareByInvitation(car, owner, sixth, 'UNLOCK_ONLY').catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(PartnerCallError);
    expect(refusal).toMatchObject({ status: 409, message: expect.stringMatching(/limit 5/) });
    const keyId = sixth.secureElement.keys()[0].keyId;
    await unknownToServer(keyId);
    expect(sixth.walletKey(keyId)).toBeUndefined();
  });
});
