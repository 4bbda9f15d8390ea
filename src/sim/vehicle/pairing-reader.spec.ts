import { generateKeyPairSync } from 'node:crypto';
import { CompactSign } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeResponseApdu, SW } from '../../protocol/apdu.js';
import { toHex } from '../../protocol/bytes.js';
import { decodeCarTci, ECP_SUBTYPE, parseEcpFrame, READER_LOCATION } from '../../protocol/ecp.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import { encodeAttestationSlot, PRIVATE_MAILBOX_LAYOUT } from '../../protocol/mailbox.js';
import { FRAMEWORK_INS, MAX_FAILED_PAIRING_ATTEMPTS, type EndpointChainDer } from '../../protocol/pairing.js';
import { COMMAND_JWS_TYPE, type PairingVerifier, type TelematicsCommand } from '../../protocol/telematics-messages.js';
import { CONTROL_FLOW_REASON_BYTES, INS } from '../../protocol/transaction.js';
import { SimulatedDevice } from '../device/simulated-device.js';
import { tearAt } from '../nfc/nfc-link.js';
import { PAIRING_SCRYPT_TEST_COST } from '../pairing-test-cost.js';
import {
  InstanceCertificateAuthority,
  type EndpointCertificateFields,
} from '../secure-element/instance-certificate-authority.js';
import { pairingVerifierFor, SimulatorPki } from '../sim-pki.js';
import type { SimulatedVehicle } from './simulated-vehicle.js';
import { TelematicsRejection } from './telematics-unit.js';

const RIGHT = '11223344';
const WRONG = '99887766';

describe('car pairing mode (§3.1, §3.3–3.4, car side)', () => {
  let pki: SimulatorPki;
  let verifiers: { right: PairingVerifier; other: PairingVerifier };

  beforeAll(async () => {
    pki = await SimulatorPki.create();
    verifiers = {
      right: await pairingVerifierFor(RIGHT, PAIRING_SCRYPT_TEST_COST),
      other: await pairingVerifierFor(RIGHT, PAIRING_SCRYPT_TEST_COST),
    };
  });

  const device = (instanceCa = pki.instanceCa()) =>
    new SimulatedDevice({ instanceCa, deviceOem: pki.localRegistrar() });

  async function carWith(verifier?: PairingVerifier): Promise<SimulatedVehicle> {
    const car = await pki.pairableVehicle();
    if (verifier) car.installPairingVerifier(verifier);
    return car;
  }

  it('a device cannot pair with a car that has no verifier (9484), nor a device without a password', async () => {
    const car = await carWith();
    const phone = device();
    phone.enterPairingPassword(RIGHT);
    expect(await phone.pairWith(car)).toMatchObject({
      result: 'refused',
      reason: 'no-verifier',
      sw: SW.PAIRING_NOT_READY,
      carEvent: { deviceNotified: true },
    });
    car.installPairingVerifier(verifiers.right);
    expect(await device().pairWith(car)).toMatchObject({ reason: 'device-not-ready', sw: SW.PAIRING_NOT_READY });
    expect(car.pairingMode.failedAttempts).toBe(0);
    expect(car.endpoints()).toHaveLength(0);
  });

  it('counts wrong passwords, refuses the 8th attempt even with the right one, and a new verifier resets it', async () => {
    const car = await carWith(verifiers.right);
    const phone = device();
    for (let attempt = 1; attempt <= MAX_FAILED_PAIRING_ATTEMPTS; attempt++) {
      phone.enterPairingPassword(WRONG);
      const result = await phone.pairWith(car);
      expect(result).toMatchObject({ result: 'refused', reason: 'wrong-password' });
      expect(result.carEvent.failedAttempts).toBe(attempt);
      expect(result.sw).toBe(attempt < MAX_FAILED_PAIRING_ATTEMPTS ? SW.BAD_DATA : SW.PAIRING_NOT_READY);
      // The car tells the phone why (OP CONTROL FLOW 00 00, then 00 0D on the seventh).
      expect(result.carEvent.deviceNotified).toBe(true);
      expect(result.deviceOutcome?.reason).toBe(attempt < MAX_FAILED_PAIRING_ATTEMPTS ? 'none' : 'attempts-exhausted');
    }
    expect(car.pairingMode).toMatchObject({ failedAttempts: 7, lockedOut: true });

    phone.enterPairingPassword(RIGHT);
    const locked = await phone.pairWith(car);
    expect(locked).toMatchObject({ result: 'refused', reason: 'attempts-exhausted', sw: SW.PAIRING_NOT_READY });
    expect(locked.deviceOutcome).toMatchObject({ success: false, reason: 'attempts-exhausted' }); // OP CONTROL FLOW 0D
    expect(car.endpoints()).toHaveLength(0);

    car.installPairingVerifier(verifiers.other);
    expect(car.pairingMode).toMatchObject({ failedAttempts: 0, lockedOut: false });
    const paired = await phone.pairWith(car);
    expect(paired).toMatchObject({ result: 'paired', sw: SW.OK });
    expect(car.endpoint(paired.keyId!)?.state).toBe('pending');
    // One verifier, one owner: pairing mode is over.
    expect(car.pairingMode).toEqual({ failedAttempts: 0, lockedOut: false });
    expect(
      car.events
        .pairings()
        .map((e) => e.result)
        .filter((r) => r !== 'refused'),
    ).toEqual(['verifier-installed', 'verifier-installed', 'paired']);
  });

  it('counts a SPAKE2+ VERIFY torn off the air, since the device may have seen the evidence', async () => {
    const car = await carWith(verifiers.right);
    const phone = device();
    phone.enterPairingPassword(RIGHT);
    const torn = await phone.pairWith(car, { tear: tearAt(FRAMEWORK_INS.SPAKE2_VERIFY, 'response'), timeoutMs: 0 });
    expect(torn).toMatchObject({ result: 'failed', reason: 'field-lost' });
    expect(car.pairingMode.failedAttempts).toBe(1);
    expect(await phone.pairWith(car)).toMatchObject({ result: 'paired' });
  });

  it('refuses X off the curve with OP CONTROL FLOW 0C, without counting an attempt', async () => {
    const car = await carWith(verifiers.right);
    const phone = device();
    phone.enterPairingPassword(RIGHT);
    const offCurve = encodeResponseApdu(Buffer.concat([Buffer.from([0x50, 0x41, 0x04]), Buffer.alloc(64, 7)]), SW.OK);
    const controlFlows: Buffer[] = [];
    const result = await phone.pairWith(car, {
      interceptResponse: (response, info) => (info.ins === FRAMEWORK_INS.SPAKE2_REQUEST ? offCurve : response),
      interceptCommand: (command, info) => {
        if (info.ins === INS.CONTROL_FLOW) controlFlows.push(command);
        return command;
      },
    });
    expect(result).toMatchObject({ result: 'refused', reason: 'invalid-point' });
    expect(controlFlows.map((c) => c[3])).toEqual([CONTROL_FLOW_REASON_BYTES['invalid-point']]);
    expect(car.pairingMode.failedAttempts).toBe(0);
  });

  it('refuses a chain from another root: nothing stored, the device discards its key, the verifier stays', async () => {
    const foreign = await SimulatorPki.create();
    const car = await carWith(verifiers.right);
    const phone = device(foreign.instanceCa());
    phone.enterPairingPassword(RIGHT);
    const result = await phone.pairWith(car);
    expect(result).toMatchObject({ result: 'refused', reason: 'chain-refused' });
    expect(result.carEvent.detail).toMatch(/^untrusted/);
    expect(car.endpoints()).toHaveLength(0);
    expect(phone.secureElement.keys()).toHaveLength(0);
    expect(car.pairingMode).toMatchObject({ pairingSessionId: verifiers.right.pairingSessionId, failedAttempts: 0 });
  });

  it('refuses an endpoint certificate naming another vehicle', async () => {
    /** An Instance CA that certifies keys for the wrong car. */
    class MisbindingCa extends InstanceCertificateAuthority {
      override issueEndpointChain(fields: EndpointCertificateFields): EndpointChainDer {
        return super.issueEndpointChain({ ...fields, vehicleIdentifier: Buffer.alloc(8, 0xee) });
      }
    }
    const car = await carWith(verifiers.right);
    const phone = device(
      new MisbindingCa({
        certificatePem: pki.set.instanceCaCert,
        privateKeyPem: pki.set.instanceCaKey,
        deviceOemCrossCertificatePem: pki.set.deviceOemCaCrossCert,
      }),
    );
    phone.enterPairingPassword(RIGHT);
    expect(await phone.pairWith(car)).toMatchObject({ result: 'refused', reason: 'wrong-vehicle' });
    expect(car.endpoints()).toHaveLength(0);
  });

  it('polls with the pairing ECP frame: subtype 0B, console TCI, the vehicle as reader group (§4.1)', async () => {
    const car = await carWith();
    const frame = parseEcpFrame(car.pairingReader.pollingFrame);
    expect(frame).toMatchObject({ subtype: ECP_SUBTYPE.PAIRING_WITH_ID, readerGroupId: car.vehicleIdentifier });
    expect(decodeCarTci(frame.tci).location).toBe(READER_LOCATION.console);
  });

  it('a pending owner never unlocks without activation; a forged or foreign receipt does not activate it', async () => {
    const car = await carWith(verifiers.right);
    const phone = device();
    phone.enterPairingPassword(RIGHT);
    const { keyId } = await phone.pairWith(car);
    const slot = PRIVATE_MAILBOX_LAYOUT.attestation.offset;
    // Forged: a receipt-shaped blob nobody signed.
    const forged = Buffer.concat([Buffer.alloc(8), Buffer.alloc(64, 1)]);
    phone.secureElement.writePrivateMailbox(keyId!, slot, encodeAttestationSlot(forged));
    expect(await phone.tap(car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-pending' });
    // A genuine receipt for another car's key.
    const other = await carWith(verifiers.other);
    const otherPhone = device();
    otherPhone.enterPairingPassword(RIGHT);
    const otherKey = (await otherPhone.pairWith(other)).keyId!;
    await otherPhone.registerKey(otherKey);
    const foreignReceipt = otherPhone.secureElement.readPrivateMailbox(otherKey).subarray(slot);
    phone.secureElement.writePrivateMailbox(keyId!, slot, foreignReceipt);
    const denied = await phone.tap(car, 'door', 'unlock');
    expect(denied).toMatchObject({ result: 'denied', reason: 'key-pending' });
    expect(car.endpoint(keyId!)).toMatchObject({ state: 'pending', hasKpersistent: false });
    expect(phone.secureElement.key(keyId!).hasKpersistent).toBe(true); // the device cannot tell
    expect(await phone.tap(car, 'door', 'lock')).toMatchObject({ result: 'denied', transaction: 'standard' });
    expect(car.ecuState.locked).toBe(true);
    expect(car.actuations).toBe(0);
  });

  it('PAIRING_VERIFIER over telematics installs the verifier; ADD_KEY then activates the pending owner', async () => {
    const server = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const car = await carWith();
    const unit = car.attachTelematics({ telematicsPublicKey: server.publicKey });
    let seq = 0;
    const sign = (fields: Partial<TelematicsCommand> & Pick<TelematicsCommand, 'cmd'>) =>
      new CompactSign(
        Buffer.from(
          JSON.stringify({
            v: 1,
            vehicleId: car.vehicleIdentifierHex,
            seq: ++seq,
            keyListVersion: seq,
            iat: 1,
            ...fields,
          }),
        ),
      )
        .setProtectedHeader({ alg: 'ES256', typ: COMMAND_JWS_TYPE })
        .sign(server.privateKey);

    await expect(unit.receive(await sign({ cmd: 'PAIRING_VERIFIER' }))).rejects.toThrow(TelematicsRejection);
    const bad = { ...verifiers.right, L: `04${'00'.repeat(64)}` };
    await expect(unit.receive(await sign({ cmd: 'PAIRING_VERIFIER', verifier: bad }))).rejects.toThrow(/malformed/);
    await unit.receive(await sign({ cmd: 'PAIRING_VERIFIER', verifier: verifiers.right }));
    expect(car.pairingMode.pairingSessionId).toBe(verifiers.right.pairingSessionId);
    expect(car.events.pairings().at(-1)).toMatchObject({ result: 'verifier-installed', detail: 'from telematics' });

    const phone = device();
    phone.enterPairingPassword(RIGHT);
    const { keyId } = await phone.pairWith(car);
    const endpointPublicKey = toHex(phone.secureElement.key(keyId!).endpointPublicKey);
    await unit.receive(
      await sign({
        cmd: 'ADD_KEY',
        keyId: keyId!,
        endpointPublicKey,
        role: 'owner',
        state: 'active',
        entitlements: toHex(encodeEntitlements(ENTITLEMENT_PROFILES.OWNER)),
      }),
    );
    expect(car.endpoint(keyId!)?.state).toBe('active');
    // No receipt in the mailbox, and none needed any more.
    expect(await phone.tap(car, 'console', 'engine-start')).toMatchObject({ result: 'granted', keyId });
  });

  it('records every attempt in the event log with its status word', async () => {
    const car = await carWith(verifiers.right);
    const phone = device();
    phone.enterPairingPassword(WRONG);
    await phone.pairWith(car);
    phone.enterPairingPassword(RIGHT);
    await phone.pairWith(car);
    expect(car.events.pairings().map((e) => [e.result, e.reason, e.sw])).toEqual([
      ['verifier-installed', 'none', SW.OK],
      ['refused', 'wrong-password', SW.BAD_DATA],
      ['paired', 'none', SW.OK],
    ]);
  });
});
