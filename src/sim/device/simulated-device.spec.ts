import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import { SW } from '../../protocol/apdu.js';
import { P256PublicKey } from '../../protocol/crypto/p256.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import { decodeSignedFriendAttestation, verifyFriendAttestation } from '../../protocol/friend-attestation.js';
import type { KeyNotification, KeyNotificationType } from '../device-oem/device-oem-backend.js';
import { PAIRING_SCRYPT_TEST_COST } from '../pairing-test-cost.js';
import { pairingVerifierFor, SimulatorPki } from '../sim-pki.js';
import { SimulatedDevice } from './simulated-device.js';

const PASSWORD = '31415926';

describe('SimulatedDevice: owner pairing, registration and the first tap (§3)', () => {
  let pki: SimulatorPki;

  beforeAll(async () => {
    pki = await SimulatorPki.create();
  });

  async function setup() {
    const car = await pki.pairableVehicle();
    const registrar = pki.localRegistrar();
    const device = new SimulatedDevice({ instanceCa: pki.instanceCa(), deviceOem: registrar, model: 'Phone 17' });
    car.installPairingVerifier(await pairingVerifierFor(PASSWORD, PAIRING_SCRYPT_TEST_COST));
    return { car, device, registrar };
  }

  it('pairs, registers, and the KTS receipt activates the key at the first standard transaction', async () => {
    const { car, device, registrar } = await setup();
    device.enterPairingPassword(PASSWORD);
    const paired = await device.pairWith(car);
    expect(paired).toMatchObject({ result: 'paired', reason: 'none', sw: SW.OK });
    const keyId = paired.keyId!;
    expect(car.endpoint(keyId)).toMatchObject({ role: 'owner', state: 'pending', pairedLocally: true });
    expect(car.pairingMode).toEqual({ failedAttempts: 0, lockedOut: false });
    expect(device.secureElement.pairingState).toBe('none');

    // Pending: no unlock before the receipt (or ADD_KEY).
    expect(await device.tap(car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-pending' });
    expect(car.ecuState.locked).toBe(true);

    const walletKey = await device.registerKey(keyId);
    expect(walletKey).toMatchObject({ keyId, state: 'registered', serverState: 'pending' });
    expect(registrar.registrations).toHaveLength(1);

    const first = await device.tap(car, 'door', 'unlock');
    expect(first).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(car.endpoint(keyId)?.state).toBe('active');
    expect(
      car.events.entries().some((e) => e.kind === 'key-list' && e.source === 'kts-receipt' && e.state === 'active'),
    ).toBe(true);
    expect(await device.tap(car, 'console', 'engine-start')).toMatchObject({ result: 'granted' });
    expect(car.ecuState.engineRunning).toBe(true);
    expect(await device.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });
});

describe("SimulatedDevice: key changes pushed by its maker's backend (§5) and sharing (§7)", () => {
  let pki: SimulatorPki;

  beforeAll(async () => {
    pki = await SimulatorPki.create();
  });

  async function pairedOwner() {
    const car = await pki.pairableVehicle();
    const device = new SimulatedDevice({ instanceCa: pki.instanceCa(), deviceOem: pki.localRegistrar() });
    car.installPairingVerifier(await pairingVerifierFor(PASSWORD, PAIRING_SCRYPT_TEST_COST));
    device.enterPairingPassword(PASSWORD);
    const keyId = (await device.pairWith(car)).keyId!;
    await device.registerKey(keyId);
    expect(await device.tap(car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    return { car, device, keyId };
  }

  const notification = (keyId: string, type: KeyNotificationType, state: string): KeyNotification => ({
    eventId: randomUUID(),
    type,
    keyId,
    vehicleId: '0102030405060708',
    keyVersion: 1,
    state,
    occurredAt: new Date().toISOString(),
  });

  it('suspends, resumes and (remote termination) deletes the key in the SE; the Wallet follows', async () => {
    const { car, device, keyId } = await pairedOwner();
    device.applyKeyNotification(notification(keyId, 'KEY_SUSPENDED', 'suspended'));
    expect(device.walletKey(keyId)).toMatchObject({ keyState: 'suspended', serverState: 'suspended', role: 'owner' });
    // A suspended key answers no reader: the car sees a refusal from the device.
    expect(await device.tap(car, 'door', 'lock')).toMatchObject({ result: 'failed', reason: 'device-refused' });

    device.applyKeyNotification(notification(keyId, 'KEY_RESUMED', 'active'));
    expect(device.walletKey(keyId)).toMatchObject({ keyState: 'active', serverState: 'active' });
    expect(await device.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast' });

    device.applyKeyNotification(notification(keyId, 'KEY_TERMINATING', 'terminating'));
    device.applyKeyNotification(notification(keyId, 'KEY_TERMINATED', 'terminated'));
    expect(device.secureElement.keys()).toEqual([]);
    expect(device.wallet).toEqual([]);
    expect(device.keyUpdates.map((update) => update.result)).toEqual([
      'suspended',
      'resumed',
      'deleted',
      'unknown-key',
    ]);
    expect(await device.tap(car, 'door', 'unlock')).toMatchObject({ result: 'failed', reason: 'device-refused' });
  });

  it("creates a certified friend key and the owner's SE attests it; a suspended owner key cannot share", async () => {
    const { car, device: owner, keyId: ownerKeyId } = await pairedOwner();
    const friend = new SimulatedDevice({ instanceCa: pki.instanceCa() });
    const entitlements = encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY);
    const request = friend.createFriendKey({
      vehicleIdentifier: car.vehicleIdentifierHex,
      vehiclePublicKey: car.publicPoint,
      entitlements,
    });
    const endpoint = new EndpointChainVerifier(pki.set.vehicleOemRootCert).verify([...request.certificateChain]);
    expect(endpoint).toMatchObject({
      keyIdentifier: request.keyId,
      vehicleIdentifier: car.vehicleIdentifierHex,
      role: 'friend',
    });
    expect(friend.secureElement.key(request.keyId)).toMatchObject({ role: 'friend', state: 'active' });

    const signed = decodeSignedFriendAttestation(owner.shareKey(ownerKeyId, request));
    const ownerKey = P256PublicKey.fromPoint(owner.secureElement.key(ownerKeyId).endpointPublicKey);
    expect(verifyFriendAttestation(signed, ownerKey)).toBe(true);
    expect(signed.attestation.endpointPublicKey).toEqual(request.endpointPublicKey);
    expect(signed.attestation.entitlements).toEqual(entitlements);
    expect(signed.attestation.ownerKeyId.toString('hex')).toBe(ownerKeyId);
    expect(signed.attestation.vehicleIdentifier.toString('hex')).toBe(car.vehicleIdentifierHex);

    owner.secureElement.setKeyState(ownerKeyId, 'suspended');
    expect(() => owner.shareKey(ownerKeyId, request)).toThrow(/suspended/);
  });
});
