import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import { encodeCommandApdu, isMoreDataStatus, parseResponseApdu, SW } from '../../protocol/apdu.js';
import { fromHex, u16 } from '../../protocol/bytes.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import {
  encodeGetResponseCommand,
  encodePairingData,
  encodeSpake2RequestCommand,
  encodeSpake2VerifyCommand,
  FRAMEWORK_APPLET_AID,
  GET_DATA_HEADER,
  parseEndpointChain,
  parseFrameworkSelectResponse,
  parseSpake2RequestResponse,
  parseSpake2VerifyResponse,
  splitWriteDataBlocks,
  WRITE_DATA_HEADER,
  type Spake2RequestCommand,
} from '../../protocol/pairing.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import { Spake2PlusVerifier } from '../../protocol/spake2plus.js';
import type { ScryptCost } from '../../protocol/spake2plus-password.js';
import type { PairingVerifier } from '../../protocol/telematics-messages.js';
import { encodeControlFlowCommand, encodeSelectCommand, type ControlFlowReason } from '../../protocol/transaction.js';
import { PAIRING_SCRYPT_TEST_COST } from '../pairing-test-cost.js';
import { pairingVerifierFor, SimulatorPki } from '../sim-pki.js';
import { DEVICE_PAIRING_ATTEMPTS } from './framework-applet.js';
import { DEVICE_KEY_LENGTH } from './sealed-state.js';
import { SoftwareSecureElement } from './software-secure-element.js';

const PASSWORD = '27182818';
const sw = (response: Buffer): number => parseResponseApdu(response).sw;

/** A car's side of §3.2–3.4 driven APDU by APDU, so each step of the applet can be poked. */
class ManualCar {
  readonly vehicleIdentifier = randomBytes(8);
  readonly vehicleKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  vehicleCertificate = Buffer.alloc(0);
  verifier!: PairingVerifier;
  spake: Spake2PlusVerifier | undefined;
  channel: SecureChannel | undefined;

  constructor(
    readonly se: SoftwareSecureElement,
    readonly pki: SimulatorPki,
  ) {}

  async init(password = PASSWORD, cost: ScryptCost = PAIRING_SCRYPT_TEST_COST): Promise<this> {
    this.verifier = await pairingVerifierFor(password, cost);
    const pem = await this.pki.issueVehicleCertificate(
      'WDD1234567A000009',
      this.vehicleIdentifier,
      this.vehicleKey.publicKey,
    );
    this.vehicleCertificate = Buffer.from(new X509Certificate(pem).raw);
    return this;
  }

  get root(): Buffer {
    return Buffer.from(new X509Certificate(this.pki.set.vehicleOemRootCert).raw);
  }

  transmit(apdu: Buffer): Buffer {
    return this.se.transmit(apdu);
  }

  select(): Buffer {
    return this.transmit(encodeSelectCommand(FRAMEWORK_APPLET_AID));
  }

  requestFields(overrides: Partial<Spake2RequestCommand> = {}): Spake2RequestCommand {
    return {
      selectedVersion: u16(0x0100),
      appletVersions: fromHex('02000100'),
      salt: fromHex(this.verifier.salt),
      scrypt: { N: this.verifier.scryptN, r: this.verifier.scryptR, p: this.verifier.scryptP },
      brand: u16(0x0d4),
      ...overrides,
    };
  }

  /** SPAKE2+ REQUEST; returns the response APDU. */
  request(overrides: Partial<Spake2RequestCommand> = {}): Buffer {
    const fields = this.requestFields(overrides);
    this.spake = new Spake2PlusVerifier(
      { w0: fromHex(this.verifier.w0), L: fromHex(this.verifier.L) },
      { selectedVersion: fields.selectedVersion, supportedVersions: fields.appletVersions },
    );
    return this.transmit(encodeSpake2RequestCommand(fields));
  }

  /** SPAKE2+ VERIFY with the real evidence, or a tampered one. */
  verify(requestResponse: Buffer, tamperM1 = false): Buffer {
    const X = parseSpake2RequestResponse(parseResponseApdu(requestResponse).data);
    const { Y, M1 } = this.spake!.respond(X);
    if (tamperM1) M1[0] ^= 0x01;
    const response = this.transmit(encodeSpake2VerifyCommand({ Y, M1 }));
    if (sw(response) === SW.OK) {
      const keys = this.spake!.confirm(parseSpake2VerifyResponse(parseResponseApdu(response).data));
      this.channel = SecureChannel.afterPairing({ kenc: keys.Kenc, kmac: keys.Kmac, krmac: keys.Krmac }, 'reader');
    }
    return response;
  }

  /** SELECT → REQUEST → VERIFY with the right password. */
  authenticate(): void {
    this.select();
    expect(sw(this.verify(this.request()))).toBe(SW.OK);
  }

  writeData(vehicleIdentifier: Buffer = this.vehicleIdentifier): number[] {
    const stream = encodePairingData({
      vehicleCertificate: this.vehicleCertificate,
      vehicleOemRoot: this.root,
      vehicleIdentifier,
      options: {
        privateMailboxSize: 256,
        confidentialMailboxSize: 128,
        entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.OWNER),
      },
    });
    return splitWriteDataBlocks(stream).map((block) => {
      const response = this.transmit(this.channel!.wrapCommand(WRITE_DATA_HEADER, block));
      if (sw(response) === SW.OK) expect(this.channel!.unwrapResponseApdu(response)).toHaveLength(0);
      return sw(response);
    });
  }

  getData(): { chain: Buffer[]; chunks: number } {
    let response = parseResponseApdu(
      this.transmit(this.channel!.wrapCommand({ ...GET_DATA_HEADER, le: 256 }, Buffer.alloc(0))),
    );
    const parts = [response.data];
    while (isMoreDataStatus(response.sw)) {
      response = parseResponseApdu(this.transmit(encodeGetResponseCommand(response.sw)));
      parts.push(response.data);
    }
    expect(response.sw).toBe(SW.OK);
    return { chain: [...parseEndpointChain(this.channel!.unwrapResponse(Buffer.concat(parts)))], chunks: parts.length };
  }

  controlFlow(success: boolean, reason: ControlFlowReason = 'none'): Buffer {
    return this.transmit(encodeControlFlowCommand({ success, reason }));
  }
}

describe('framework applet (§3.2–3.4, device side)', () => {
  let pki: SimulatorPki;

  beforeAll(async () => {
    pki = await SimulatorPki.create();
  });

  async function setup(options: { password?: boolean; instanceCa?: boolean } = {}) {
    const se = new SoftwareSecureElement(options.instanceCa === false ? {} : { instanceCa: pki.instanceCa() });
    if (options.password !== false) se.enterPairingPassword(PASSWORD);
    const car = await new ManualCar(se, pki).init();
    return { se, car };
  }

  it('SELECT reports 5A SPAKE2+ 0100, 5C 0200 0100 and D4 ready only with a password and an Instance CA', async () => {
    const { se, car } = await setup({ password: false });
    const parse = () => parseFrameworkSelectResponse(parseResponseApdu(car.select()).data);
    expect(parse()).toMatchObject({ spake2Versions: [0x0100], appletVersions: [0x0200, 0x0100], pairingState: 'none' });
    expect(parseResponseApdu(car.select()).data.toString('hex')).toBe('5a0201005c0402000100d40100');
    se.enterPairingPassword(PASSWORD);
    expect(parse().pairingState).toBe('ready');
    expect(() => se.enterPairingPassword('1234')).toThrow(/8 digits/);
    se.cancelPairing();
    expect(parse().pairingState).toBe('none');
    const noCa = await setup({ instanceCa: false });
    expect(noCa.se.pairingState).toBe('none');
    noCa.car.select();
    expect(sw(noCa.car.request())).toBe(SW.PAIRING_NOT_READY);
  });

  it('answers 9484 to SPAKE2+ REQUEST without a pairing password', async () => {
    const { car } = await setup({ password: false });
    car.select();
    expect(sw(car.request())).toBe(SW.PAIRING_NOT_READY);
  });

  it('refuses commands out of sequence with 6985', async () => {
    const { se, car } = await setup();
    // Not selected: the transaction applet does not know SPAKE2+ REQUEST.
    expect(sw(car.request())).toBe(SW.BAD_INS);
    car.select();
    const Y = Buffer.concat([Buffer.from([4]), randomBytes(64)]);
    expect(sw(car.transmit(encodeSpake2VerifyCommand({ Y, M1: randomBytes(16) })))).toBe(SW.WRONG_SEQUENCE);
    car.select();
    const secured = encodeCommandApdu({ cla: 0x84, ins: 0xd4, p1: 0, p2: 0, data: randomBytes(24) });
    expect(sw(car.transmit(secured))).toBe(SW.WRONG_SEQUENCE);
    expect(
      sw(car.transmit(encodeCommandApdu({ cla: 0x84, ins: 0xca, p1: 0xdf, p2: 0x10, data: randomBytes(8) }))),
    ).toBe(SW.WRONG_SEQUENCE);
    expect(sw(car.transmit(encodeGetResponseCommand(0x6100)))).toBe(SW.WRONG_SEQUENCE);
    car.select();
    expect(sw(car.request())).toBe(SW.OK);
    expect(sw(car.request())).toBe(SW.WRONG_SEQUENCE); // a second REQUEST in the session…
    expect(se.frameworkPhase).toBe('idle'); // …ended it
    car.authenticate();
    expect(sw(car.controlFlow(true))).toBe(SW.WRONG_SEQUENCE); // success before any key exists
  });

  it('refuses malformed commands: 6E00, 6D00, 6700, 6A80', async () => {
    const { car } = await setup();
    car.select();
    expect(sw(car.transmit(Buffer.from([0x00, 0x30, 0x00, 0x00])))).toBe(SW.BAD_CLA); // REQUEST is CLA 80
    car.select();
    expect(sw(car.transmit(Buffer.from([0x80, 0x42, 0x00, 0x00])))).toBe(SW.BAD_INS);
    car.select();
    expect(sw(car.transmit(Buffer.from([0x80, 0x30, 0x00, 0x00, 0x05, 0x01])))).toBe(SW.WRONG_LENGTH);
    car.select();
    expect(sw(car.transmit(Buffer.from([0x80, 0x30, 0x00, 0x00, 0x02, 0x5b, 0x00])))).toBe(SW.BAD_DATA);
    car.select();
    expect(sw(car.transmit(Buffer.from([0x80, 0x30, 0x01, 0x00, 0x02, 0x5b, 0x00])))).toBe(SW.BAD_DATA); // P1
  });

  it('refuses absurd scrypt costs before doing any work, an unoffered version and a changed 5C', async () => {
    const { car } = await setup();
    const cases: Partial<Spake2RequestCommand>[] = [
      { scrypt: { N: 1 << 20, r: 8, p: 1 } }, // 1 GiB
      { scrypt: { N: 4096, r: 8, p: 64 } },
      { scrypt: { N: 512, r: 8, p: 1 } }, // trivially weak
      { scrypt: { N: 3000, r: 8, p: 1 } }, // not a power of two
      { selectedVersion: u16(0x0200) },
      { appletVersions: fromHex('0100') }, // a downgrade of the list the device sent
    ];
    for (const overrides of cases) {
      car.select();
      const started = performance.now();
      expect(sw(car.request(overrides)), JSON.stringify(overrides)).toBe(SW.BAD_DATA);
      expect(performance.now() - started).toBeLessThan(500);
    }
  });

  it('checks the car evidence before answering: a wrong M1 gets 6A80 and no M2, and ends the session', async () => {
    const { se, car } = await setup();
    car.select();
    const response = car.verify(car.request(), true);
    expect(parseResponseApdu(response)).toEqual({ data: Buffer.alloc(0), sw: SW.BAD_DATA });
    expect(se.frameworkPhase).toBe('idle');
    expect(se.pairingOutcomes.at(-1)).toMatchObject({ success: false, reason: 'wrong-evidence' });
    expect(se.pairingState).toBe('ready'); // the user may try again
  });

  it('a car with another password fails the same way; after 7 wrong evidences the device drops the password (9484)', async () => {
    const { se } = await setup();
    const impostor = await new ManualCar(se, pki).init('00000000');
    for (let attempt = 1; attempt <= DEVICE_PAIRING_ATTEMPTS; attempt++) {
      impostor.select();
      const status = sw(impostor.verify(impostor.request()));
      expect(status).toBe(attempt < DEVICE_PAIRING_ATTEMPTS ? SW.BAD_DATA : SW.PAIRING_NOT_READY);
    }
    expect(se.pairingState).toBe('none');
    impostor.select();
    expect(sw(impostor.request())).toBe(SW.PAIRING_NOT_READY);
    expect(se.pairingOutcomes.at(-1)).toMatchObject({ success: false, reason: 'attempts-exhausted-on-device' });
  });

  it('refuses a Y that is not on the curve without counting it as a wrong password', async () => {
    const { se, car } = await setup();
    car.select();
    car.request();
    const offCurve = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
    expect(sw(car.transmit(encodeSpake2VerifyCommand({ Y: offCurve, M1: randomBytes(16) })))).toBe(SW.BAD_DATA);
    expect(se.pairingOutcomes).toHaveLength(0);
  });

  it('runs the whole exchange: key generated inside, chain from the Instance CA, 61xx chaining, CONTROL FLOW', async () => {
    const { se, car } = await setup();
    car.authenticate();
    expect(se.frameworkPhase).toBe('secured');
    const statuses = car.writeData();
    expect(statuses.length).toBeGreaterThan(2);
    expect(statuses.every((status) => status === SW.OK)).toBe(true);
    expect(se.frameworkPhase).toBe('key-created');
    const { chain, chunks } = car.getData();
    expect(chunks).toBeGreaterThan(1);
    const endpoint = new EndpointChainVerifier(pki.set.vehicleOemRootCert).verify(chain);
    expect(endpoint).toMatchObject({ vehicleIdentifier: car.vehicleIdentifier.toString('hex'), role: 'owner' });
    expect(endpoint.entitlements?.toString('hex')).toBe(encodeEntitlements(ENTITLEMENT_PROFILES.OWNER).toString('hex'));
    expect(se.pairingState).toBe('none'); // one password, one key
    expect(sw(car.controlFlow(true))).toBe(SW.OK);
    const key = se.key(endpoint.keyIdentifier);
    expect(key).toMatchObject({
      role: 'owner',
      state: 'active',
      vehicleIdentifier: car.vehicleIdentifier.toString('hex'),
    });
    // Bound to the vehicle key from the certificate, the root kept, the chain retrievable.
    const vehiclePoint = car.vehicleKey.publicKey.export({ format: 'jwk' });
    expect(key.vehiclePublicKey.subarray(1, 33).toString('base64url')).toBe(vehiclePoint.x);
    expect(se.endpointCertificateChain(endpoint.keyIdentifier)).toEqual(chain);
    expect(se.pairingOutcomes.at(-1)).toMatchObject({ success: true, keyId: endpoint.keyIdentifier });
    // The private key never leaves: not in the chain, not in any summary.
    const restored = SoftwareSecureElement.importState(
      se.exportState(Buffer.alloc(DEVICE_KEY_LENGTH, 7)),
      Buffer.alloc(DEVICE_KEY_LENGTH, 7),
    );
    expect(restored.endpointCertificateChain(endpoint.keyIdentifier)).toEqual(chain);
  });

  it('refuses a vehicle certificate for another vehicle identifier and creates no key', async () => {
    const { se, car } = await setup();
    car.authenticate();
    const statuses = car.writeData(randomBytes(8));
    expect(statuses.at(-1)).toBe(SW.BAD_DATA);
    expect(se.keys()).toHaveLength(0);
    expect(se.pairingOutcomes.at(-1)).toMatchObject({ reason: 'vehicle-certificate-refused' });
  });

  it('discards the key when the car refuses the chain, or when the field goes before the chain left', async () => {
    const refused = await setup();
    refused.car.authenticate();
    refused.car.writeData();
    refused.car.getData();
    expect(refused.se.keys()).toHaveLength(1);
    expect(sw(refused.car.controlFlow(false, 'key-unknown'))).toBe(SW.OK);
    expect(refused.se.keys()).toHaveLength(0);

    const torn = await setup();
    torn.car.authenticate();
    torn.car.writeData();
    torn.se.fieldLost();
    expect(torn.se.keys()).toHaveLength(0);
    expect(torn.se.pairingOutcomes.at(-1)).toMatchObject({ success: false, reason: 'aborted' });
    expect(torn.se.pairingState).toBe('ready'); // the password was not used up

    const late = await setup();
    late.car.authenticate();
    late.car.writeData();
    late.car.getData();
    late.se.fieldLost(); // CONTROL FLOW never arrived: the car may hold the key, so it stays
    expect(late.se.keys()).toHaveLength(1);
    expect(late.se.pairingOutcomes.at(-1)).toMatchObject({ success: true, reason: 'unconfirmed' });
  });

  it('ends the session on a bad C-MAC (§4.5: no retry)', async () => {
    const { se, car } = await setup();
    car.authenticate();
    const apdu = car.channel!.wrapCommand(WRITE_DATA_HEADER, Buffer.from('df0100', 'hex'));
    apdu[apdu.length - 1] ^= 0x01;
    expect(sw(car.transmit(apdu))).toBe(SW.BAD_DATA);
    expect(se.frameworkPhase).toBe('idle');
  });
});
