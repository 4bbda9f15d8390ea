import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { encodeCommandApdu, parseResponseApdu, SW } from '../../protocol/apdu.js';
import { EphemeralKeyPair, P256KeyPair } from '../../protocol/crypto/p256.js';
import { ECP_SUBTYPE, encodeCarTci, encodeEcpFrame, READER_LOCATION } from '../../protocol/ecp.js';
import { ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import { keyIdentifier, readerIdentifier } from '../../protocol/identifiers.js';
import {
  encodeAuth0Command,
  encodeAuth1Command,
  encodeControlFlowCommand,
  encodeSelectCommand,
  FRAMEWORK_APPLET_AID,
  parseAuth0Response,
  parseSelectResponse,
  PROTOCOL_VERSION_1,
  PROTOCOL_VERSION_2,
  signReaderAuthentication,
  transactionContext,
  type Auth0Command,
  type TransactionCode,
} from '../../protocol/transaction.js';
import { provisionKey } from '../nfc/provision-key.js';
import { tap } from '../nfc/tap.js';
import { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import { DEVICE_KEY_LENGTH } from './sealed-state.js';
import { SecureElementError } from './secure-element-error.js';
import { SoftwareSecureElement, type SoftwareSecureElementOptions } from './software-secure-element.js';
import {
  TERMINATION_ATTESTATION_LABEL,
  terminationAttestationMessage,
  verifyTerminationAttestation,
} from '../../protocol/termination-attestation.js';

const sw = (response: Buffer): number => parseResponseApdu(response).sw;

function frame(noAuthRequired: boolean, location = READER_LOCATION.door): Buffer {
  return encodeEcpFrame({
    presentAutomatically: true,
    noAuthRequired,
    subtype: ECP_SUBTYPE.WITH_READER_ID,
    tci: encodeCarTci({ manufacturer: 0x0d4, location }),
  });
}

/** A bare reader driving the applet APDU by APDU, holding a vehicle key. */
class ManualReader {
  readonly vehicleKey = P256KeyPair.generate();
  readonly vehicleIdentifier = randomBytes(8);
  readonly readerId = readerIdentifier(this.vehicleIdentifier, Buffer.alloc(8));

  auth0(code: TransactionCode = 'unlock', version = PROTOCOL_VERSION_2, requestFast = true): Auth0Command {
    return {
      requestFast,
      transactionCode: code,
      selectedVersion: version,
      readerEphemeralPublicKey: EphemeralKeyPair.generate().publicPoint,
      transactionId: randomBytes(16),
      readerId: this.readerId,
    };
  }
}

function setup(options: SoftwareSecureElementOptions = {}) {
  const reader = new ManualReader();
  const se = new SoftwareSecureElement(options);
  const key = se.createKey({
    vehicleIdentifier: reader.vehicleIdentifier,
    vehiclePublicKey: reader.vehicleKey.publicPoint,
    entitlements: ENTITLEMENT_PROFILES.OWNER,
    role: 'owner',
  });
  se.pollingFrame(frame(true));
  return { se, reader, key };
}

describe('SoftwareSecureElement APDU handling (§4.2)', () => {
  it('answers SELECT with its versions, highest first, and refuses other applets with 6A88', () => {
    const { se } = setup({ supportedVersions: [PROTOCOL_VERSION_2] });
    const response = parseResponseApdu(se.transmit(encodeSelectCommand()));
    expect(response.sw).toBe(SW.OK);
    expect(parseSelectResponse(response.data)).toEqual([PROTOCOL_VERSION_2]);
    expect(se.sessionPhase).toBe('selected');
    expect(sw(se.transmit(encodeSelectCommand(Buffer.from('a000000809434343444b587631', 'hex'))))).toBe(SW.NOT_FOUND);
    expect(se.sessionPhase).toBe('idle');
    // The framework applet (§3.2) is there too; selecting it leaves the transaction applet.
    se.transmit(encodeSelectCommand());
    expect(sw(se.transmit(encodeSelectCommand(FRAMEWORK_APPLET_AID)))).toBe(SW.OK);
    expect([se.sessionPhase, se.frameworkPhase]).toEqual(['idle', 'selected']);
  });

  it('refuses unknown classes (6E00), unknown instructions (6D00), the wrong class for an instruction and bad lengths', () => {
    const { se } = setup();
    expect(sw(se.transmit(Buffer.from([0x90, 0xa4, 0x04, 0x00])))).toBe(SW.BAD_CLA);
    expect(sw(se.transmit(Buffer.from([0x80, 0x42, 0x00, 0x00])))).toBe(SW.BAD_INS);
    expect(sw(se.transmit(Buffer.from([0x80, 0xa4, 0x04, 0x00])))).toBe(SW.BAD_CLA); // SELECT is CLA 00
    expect(sw(se.transmit(Buffer.from([0x00, 0x81, 0x00, 0x00])))).toBe(SW.BAD_CLA); // AUTH1 is CLA 80
    expect(sw(se.transmit(Buffer.from([0x00, 0xa4])))).toBe(SW.WRONG_LENGTH);
    expect(sw(se.transmit(Buffer.from([0x00, 0xa4, 0x04, 0x00, 0x05, 0x01])))).toBe(SW.WRONG_LENGTH); // Lc 5, 1 byte
    expect(sw(se.transmit(Buffer.from([0x00, 0xa4, 0x04, 0x00, 0x02, 0x01, 0x02])))).toBe(SW.BAD_DATA); // AID too short
  });

  it('refuses commands out of sequence with 6985', () => {
    const { se, reader } = setup();
    const auth0 = encodeAuth0Command(reader.auth0());
    expect(sw(se.transmit(auth0))).toBe(SW.WRONG_SEQUENCE); // no SELECT yet
    se.transmit(encodeSelectCommand());
    expect(sw(se.transmit(encodeAuth1Command(randomBytes(64))))).toBe(SW.WRONG_SEQUENCE);
    expect(sw(se.transmit(encodeCommandApdu({ cla: 0x84, ins: 0xc9, p1: 0, p2: 0, data: randomBytes(24) })))).toBe(
      SW.WRONG_SEQUENCE,
    );
    expect(sw(se.transmit(encodeControlFlowCommand({ success: true, reason: 'none' })))).toBe(SW.WRONG_SEQUENCE);
    expect(sw(se.transmit(auth0))).toBe(SW.OK);
    expect(sw(se.transmit(auth0))).toBe(SW.WRONG_SEQUENCE); // a second AUTH0 in the same session
    expect(se.sessionPhase).toBe('selected'); // …which ended the session
  });

  it('refuses a selected version it did not offer (downgrade) and malformed AUTH0 data', () => {
    const { se, reader } = setup({ supportedVersions: [PROTOCOL_VERSION_2] });
    se.transmit(encodeSelectCommand());
    expect(sw(se.transmit(encodeAuth0Command(reader.auth0('unlock', PROTOCOL_VERSION_1))))).toBe(SW.BAD_DATA);
    expect(se.sessionPhase).toBe('selected');
    const bad = encodeAuth0Command(reader.auth0());
    bad[5] = 0x5d; // the version tag 5C becomes an unknown tag
    expect(sw(se.transmit(bad))).toBe(SW.BAD_DATA);
  });

  it('returns a fresh random cryptogram when it holds no Kpersistent for the car (privacy)', () => {
    const { se, reader } = setup();
    const cryptograms = new Set<string>();
    for (let i = 0; i < 3; i++) {
      se.transmit(encodeSelectCommand());
      const response = parseAuth0Response(parseResponseApdu(se.transmit(encodeAuth0Command(reader.auth0()))).data);
      expect(response.cryptogram).toHaveLength(16);
      cryptograms.add(response.cryptogram!.toString('hex'));
      se.pollingFrame(frame(true)); // the next tap
    }
    expect(cryptograms.size).toBe(3);
    // Standard-only AUTH0 (P1 = 00): no cryptogram at all.
    se.transmit(encodeSelectCommand());
    const standard = parseAuth0Response(
      parseResponseApdu(se.transmit(encodeAuth0Command(reader.auth0('unlock', PROTOCOL_VERSION_2, false)))).data,
    );
    expect(standard.cryptogram).toBeUndefined();
  });

  it('answers a car it holds no key for like any other (decoy), and refuses its AUTH1', () => {
    const { se } = setup();
    const stranger = new ManualReader();
    se.transmit(encodeSelectCommand());
    const auth0 = stranger.auth0();
    const response = parseResponseApdu(se.transmit(encodeAuth0Command(auth0)));
    expect(response.sw).toBe(SW.OK);
    const context = transactionContext(auth0, parseAuth0Response(response.data), se.supportedVersions);
    const auth1 = encodeAuth1Command(signReaderAuthentication(stranger.vehicleKey, context));
    expect(se.transmit(auth1)).toEqual(Buffer.from([0x6a, 0x80]));
  });

  it('counts transactions per key', () => {
    const { se, reader, key } = setup();
    for (let i = 0; i < 2; i++) {
      se.transmit(encodeSelectCommand());
      se.transmit(encodeAuth0Command(reader.auth0()));
    }
    expect(se.key(key.keyId).counter).toBe(2n);
  });
});

describe('express mode and user confirmation (§4.1)', () => {
  it('transacts without asking when the reader sets the no-authentication bit', async () => {
    const asked: string[] = [];
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement({ userConfirmation: (request) => (asked.push(request.keyId), false) });
    provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    expect((await tap(se, car, 'door', 'unlock')).result).toBe('granted');
    expect(asked).toEqual([]);
  });

  it('asks the user when the express bit is clear, and refuses AUTH0 with 6985 when nobody confirms', async () => {
    const car = new SimulatedVehicle({ expressMode: false });
    let confirm = false;
    const requests: { readerLocation?: number }[] = [];
    const se = new SoftwareSecureElement({
      userConfirmation: (request) => {
        requests.push(request);
        return confirm;
      },
    });
    const { keyId } = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    const refused = await tap(se, car, 'trunk', 'trunk');
    expect(refused).toMatchObject({ result: 'failed', reason: 'device-refused' });
    expect(refused.event.detail).toContain('6985');
    confirm = true;
    expect((await tap(se, car, 'trunk', 'trunk')).result).toBe('granted');
    expect(requests).toHaveLength(2);
    expect(requests[1]).toMatchObject({ keyId, transactionCode: 'trunk', readerLocation: READER_LOCATION.trunk });
  });

  it('asks for every transaction when the user turned express mode off', async () => {
    const car = new SimulatedVehicle();
    let asked = 0;
    const se = new SoftwareSecureElement({ expressMode: false, userConfirmation: () => (asked++, true) });
    provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    expect((await tap(se, car, 'door', 'unlock')).result).toBe('granted');
    expect(asked).toBe(1);
  });

  it('ignores a garbled polling frame', () => {
    const se = new SoftwareSecureElement();
    const garbled = frame(true);
    garbled[garbled.length - 1] ^= 0x01;
    expect(se.pollingFrame(garbled)).toBe(false);
    expect(se.pollingFrame(frame(true))).toBe(true);
  });
});

describe('key states and device-side deletion (§5)', () => {
  it('a suspended key does not transact; resumed, it does', async () => {
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement();
    const { keyId } = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    se.setKeyState(keyId, 'suspended');
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'failed', reason: 'device-refused' });
    se.setKeyState(keyId, 'active');
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'standard' });
  });

  it('terminateKey disables the key at once and signs TERMINATED ‖ vehicle id ‖ key id ‖ counter ‖ unix-ms', async () => {
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement({ clock: () => 1_750_000_000_123 });
    const created = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    await tap(se, car, 'door', 'unlock');
    await tap(se, car, 'door', 'lock');
    const attestation = se.terminateKey(created.keyId);
    expect(attestation.counter).toBe(2n);
    expect(attestation.unixMs).toBe(1_750_000_000_123);
    const message = terminationAttestationMessage(car.vehicleIdentifier, created.keyIdentifier, 2n, 1_750_000_000_123);
    expect(message.subarray(0, 10)).toEqual(TERMINATION_ATTESTATION_LABEL);
    expect(message).toHaveLength(10 + 8 + 8 + 8 + 8);
    expect(verifyTerminationAttestation(attestation, created.endpointPublicKey)).toBe(true);
    expect(verifyTerminationAttestation({ ...attestation, counter: 3n }, created.endpointPublicKey)).toBe(false);
    expect(se.terminateKey(created.keyId)).toBe(attestation);
    expect(se.key(created.keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    expect(() => se.setKeyState(created.keyId, 'active')).toThrow(SecureElementError);
    // The car still lists the key (the server has not pushed the revocation), but the phone refuses.
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'failed', reason: 'device-refused' });
  });

  it('unknown key ids are refused by the management API', () => {
    const se = new SoftwareSecureElement();
    expect(() => se.setKeyState('00'.repeat(8), 'active')).toThrow(SecureElementError);
  });
});

describe('persistence (sealed state)', () => {
  it('round-trips with the right device key and keeps transacting (fast, with the persisted Kpersistent)', async () => {
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement();
    const { keyId } = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    await tap(se, car, 'door', 'unlock');
    se.writeConfidentialMailbox(keyId, 0, Buffer.alloc(32, 0x11));
    const deviceKey = randomBytes(DEVICE_KEY_LENGTH);
    const restored = SoftwareSecureElement.importState(se.exportState(deviceKey), deviceKey);
    expect(restored.keys()).toEqual(se.keys());
    expect(restored.readConfidentialMailbox(keyId)).toEqual(se.readConfidentialMailbox(keyId));
    expect(await tap(restored, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'fast' });
    car.forgetKpersistent(keyId);
    // A standard transaction proves the restored SE still holds the endpoint private key.
    expect(await tap(restored, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'standard' });
  });

  it('fails with a wrong device key or a tampered blob', () => {
    const { se } = setup();
    const deviceKey = randomBytes(DEVICE_KEY_LENGTH);
    const blob = se.exportState(deviceKey);
    expect(() => SoftwareSecureElement.importState(blob, randomBytes(DEVICE_KEY_LENGTH))).toThrow(
      expect.objectContaining({ code: 'sealed-state-rejected' }),
    );
    const tampered = Buffer.from(blob);
    tampered[20] ^= 0x01;
    expect(() => SoftwareSecureElement.importState(tampered, deviceKey)).toThrow(SecureElementError);
    expect(() => se.exportState(randomBytes(16))).toThrow(expect.objectContaining({ code: 'bad-device-key' }));
  });

  it('the private scalar is in neither the exported blob nor anything reachable from outside the applet', () => {
    const endpointKey = P256KeyPair.generate();
    const scalar = endpointKey.privateScalar();
    const se = new SoftwareSecureElement({ generateEndpointKeyPair: () => endpointKey });
    const vehicle = P256KeyPair.generate();
    const { keyIdentifier: id } = se.createKey({
      vehicleIdentifier: randomBytes(8),
      vehiclePublicKey: vehicle.publicPoint,
    });
    expect(id).toEqual(keyIdentifier(endpointKey.publicPoint));
    const blob = se.exportState(randomBytes(DEVICE_KEY_LENGTH));
    for (const encoding of [scalar, Buffer.from(scalar.toString('hex')), Buffer.from(scalar.toString('base64url'))]) {
      expect(blob.includes(encoding)).toBe(false);
    }
    const visible = [
      JSON.stringify(se),
      inspect(se, { depth: 10, showHidden: true }),
      inspect(se.keys(), { depth: 10 }),
    ];
    for (const text of visible) {
      expect(text).not.toContain(scalar.toString('hex'));
      expect(text).not.toContain(scalar.toString('base64url'));
    }
    expect(Reflect.ownKeys(se)).toEqual(['expressMode']);
  });
});
