import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMoreDataStatus, parseResponseApdu, SW } from '../../protocol/apdu.js';
import { fromHex, u16 } from '../../protocol/bytes.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import {
  encodeGetResponseCommand,
  encodePairingData,
  encodeSpake2RequestCommand,
  encodeSpake2VerifyCommand,
  FRAMEWORK_APPLET_AID,
  FRAMEWORK_INS,
  GET_DATA_HEADER,
  parseSpake2RequestResponse,
  parseSpake2VerifyResponse,
  splitWriteDataBlocks,
  WRITE_DATA_HEADER,
} from '../../protocol/pairing.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import {
  computeL,
  Spake2PlusVerifier,
  verifierFromScryptOutput,
  type ProverSecrets,
} from '../../protocol/spake2plus.js';
import { encodeControlFlowCommand, encodeSelectCommand } from '../../protocol/transaction.js';
import { SimulatorPki } from '../sim-pki.js';
import { SoftwareSecureElement } from './software-secure-element.js';
import { applyEdits, editArb, fuzzRuns, fuzzTimeoutMs } from '../../../test/support/property-testing.js';

// Each secured run is a whole SPAKE2+ handshake: it takes a 1/200 share of the long mode.
const RUNS = fuzzRuns(2_000);
const SECURED_RUNS = fuzzRuns(40, 200);
const PASSWORD = '55555555';
const SALT = Buffer.alloc(16, 0x5a);
const COST = { N: 4096, r: 8, p: 1 };

/** A cheap stand-in for scrypt: the handler, not the KDF, is under test (scrypt would dominate). */
function cheapSecrets(password: Buffer, salt: Buffer): ProverSecrets {
  const z = Buffer.concat(
    [0, 1].map((i) =>
      createHash('sha512')
        .update(Buffer.from([i]))
        .update(password)
        .update(salt)
        .digest(),
    ),
  );
  const { w0, w1 } = verifierFromScryptOutput(z.subarray(0, 80));
  return { w0, w1 };
}

const STATUS_WORDS = new Set<number>([
  SW.OK,
  SW.WRONG_SEQUENCE,
  SW.BAD_DATA,
  SW.NOT_FOUND,
  SW.WRONG_LENGTH,
  SW.BAD_INS,
  SW.BAD_CLA,
  SW.PAIRING_NOT_READY,
]);

function checkStatus(response: Buffer): number {
  if (response.length < 2) throw new Error('response without a status word');
  const status = response.readUInt16BE(response.length - 2);
  if (!STATUS_WORDS.has(status) && !isMoreDataStatus(status))
    throw new Error(`unexpected status ${status.toString(16)}`);
  return status;
}

describe('fuzzing the framework applet APDU handler (§3.2)', () => {
  let pki: SimulatorPki;
  let pairingData: Buffer;
  const verifierRecord = (() => {
    const { w0, w1 } = cheapSecrets(Buffer.from(PASSWORD), SALT);
    return { w0, L: computeL(w1) };
  })();

  beforeAll(async () => {
    pki = await SimulatorPki.create();
    const vehicleIdentifier = randomBytes(8);
    const vehicleKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const certificate = await pki.issueVehicleCertificate('WDD1234567A000010', vehicleIdentifier, vehicleKey);
    pairingData = encodePairingData({
      vehicleCertificate: Buffer.from(new X509Certificate(certificate).raw),
      vehicleOemRoot: Buffer.from(new X509Certificate(pki.set.vehicleOemRootCert).raw),
      vehicleIdentifier,
      options: {
        privateMailboxSize: 256,
        confidentialMailboxSize: 128,
        entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.OWNER),
      },
    });
  });

  const newSe = () =>
    new SoftwareSecureElement({
      instanceCa: pki.instanceCa(),
      derivePairingSecrets: (password, salt) => cheapSecrets(password, salt),
    });
  const request = (overrides: { appletVersions?: Buffer } = {}) =>
    encodeSpake2RequestCommand({
      selectedVersion: u16(0x0100),
      appletVersions: overrides.appletVersions ?? fromHex('02000100'),
      salt: SALT,
      scrypt: COST,
      brand: u16(0x0d4),
    });

  /** A car's SPAKE2+ side for the cheap secrets; 5B/5C as in `request()`. */
  const carSpake = () =>
    new Spake2PlusVerifier(verifierRecord, { selectedVersion: u16(0x0100), supportedVersions: fromHex('02000100') });

  /** SELECT → REQUEST → VERIFY for real, as a car holding the right verifier: the session keys. */
  const genuineHandshake = (se: SoftwareSecureElement) => {
    se.enterPairingPassword(PASSWORD);
    se.transmit(encodeSelectCommand(FRAMEWORK_APPLET_AID));
    const spake = carSpake();
    const X = parseSpake2RequestResponse(parseResponseApdu(se.transmit(request())).data);
    const verify = parseResponseApdu(se.transmit(encodeSpake2VerifyCommand(spake.respond(X))));
    expect(verify.sw).toBe(SW.OK);
    return spake.confirm(parseSpake2VerifyResponse(verify.data));
  };

  it(
    `always answers a status word and never reveals M2 without a valid M1 (${RUNS} runs)`,
    () => {
      // An on-curve Y (from a throw-away session) to mutate, besides random ones.
      const other = newSe();
      other.enterPairingPassword(PASSWORD);
      other.transmit(encodeSelectCommand(FRAMEWORK_APPLET_AID));
      const { Y: validY } = carSpake().respond(
        parseSpake2RequestResponse(parseResponseApdu(other.transmit(request())).data),
      );
      const seeds = [
        encodeSelectCommand(FRAMEWORK_APPLET_AID),
        encodeSelectCommand(),
        request(),
        request({ appletVersions: fromHex('0100') }),
        encodeSpake2VerifyCommand({ Y: validY, M1: randomBytes(16) }),
        encodeSpake2VerifyCommand({ Y: Buffer.concat([Buffer.from([4]), randomBytes(64)]), M1: randomBytes(16) }),
        Buffer.concat([
          Buffer.from([0x84, 0xd4, 0x00, 0x00, 0xe8]),
          splitWriteDataBlocks(pairingData)[0],
          randomBytes(8),
        ]),
        Buffer.from([0x84, 0xca, 0xdf, 0x10, 0x08, ...randomBytes(8), 0x00]),
        encodeGetResponseCommand(0x6100),
        encodeControlFlowCommand({ success: true, reason: 'none' }),
        encodeControlFlowCommand({ success: false, reason: 'attempts-exhausted' }),
      ];
      const header = fc.record({
        cla: fc.constantFrom(0x00, 0x80, 0x84, 0xff),
        ins: fc.constantFrom(...Object.values(FRAMEWORK_INS), 0x80, 0x00),
        p1: fc.integer({ min: 0, max: 255 }),
        p2: fc.integer({ min: 0, max: 255 }),
        body: fc.uint8Array({ maxLength: 270 }),
      });
      const apdu: fc.Arbitrary<Buffer> = fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(...seeds) },
        {
          weight: 4,
          arbitrary: fc
            .tuple(fc.constantFrom(...seeds), fc.array(editArb, { minLength: 1, maxLength: 3 }))
            .map(([base, m]) => applyEdits(base, m)),
        },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)) },
        {
          weight: 2,
          arbitrary: header.map(({ cla, ins, p1, p2, body }) => Buffer.concat([Buffer.from([cla, ins, p1, p2]), body])),
        },
      );
      const start = fc.constantFrom<Buffer[]>([], [seeds[0]], [seeds[0]], [seeds[0], seeds[2]]);
      const se = newSe();

      fc.assert(
        fc.property(start, fc.array(apdu, { minLength: 1, maxLength: 5 }), (prefix, commands) => {
          se.fieldLost();
          se.enterPairingPassword(PASSWORD); // keep the device ready, so runs reach SPAKE2+
          for (const command of [...prefix, ...commands]) {
            const response = se.transmit(command); // throwing fails the property
            const status = checkStatus(response);
            // No command carries a valid M1 for the live session: M2 never leaves the applet.
            if (command.length >= 2 && command[1] === FRAMEWORK_INS.SPAKE2_VERIFY && status === SW.OK) {
              throw new Error('VERIFY answered without a valid M1');
            }
            if (status !== SW.OK && response.length !== 2) throw new Error('data with an error status');
          }
          if (se.keys().length > 0) throw new Error('a key was created without authentication');
        }),
        { numRuns: RUNS },
      );
      // Nothing stuck: the same applet still runs a genuine SPAKE2+ handshake to the end.
      se.fieldLost();
      expect(genuineHandshake(se).Kenc).toHaveLength(16);
    },
    fuzzTimeoutMs(RUNS, 1.5),
  );

  it(
    `inside an authenticated session, a mutated secured command never leaves a key behind (${SECURED_RUNS} runs)`,
    () => {
      const se = newSe();
      const blocks = splitWriteDataBlocks(pairingData);
      /** SELECT → REQUEST → VERIFY for real; returns the car's end of the pairing channel. */
      const authenticate = (): SecureChannel => {
        const keys = genuineHandshake(se);
        return SecureChannel.afterPairing({ kenc: keys.Kenc, kmac: keys.Kmac, krmac: keys.Krmac }, 'reader');
      };
      fc.assert(
        fc.property(fc.nat(blocks.length), fc.array(editArb, { minLength: 1, maxLength: 3 }), (target, mutations) => {
          const channel = authenticate();
          for (let i = 0; i <= target; i++) {
            const genuine =
              i < blocks.length
                ? channel.wrapCommand(WRITE_DATA_HEADER, blocks[i])
                : channel.wrapCommand({ ...GET_DATA_HEADER, le: 256 }, Buffer.alloc(0));
            const command = i === target ? applyEdits(genuine, mutations) : genuine;
            const response = se.transmit(command);
            const status = checkStatus(response);
            if (i < target) {
              expect(status).toBe(SW.OK);
              channel.unwrapResponseApdu(response);
            } else if (status !== SW.OK && !isMoreDataStatus(status)) {
              if (se.frameworkPhase !== 'idle') throw new Error('an error did not end the session');
            }
          }
          // The car refuses (or the field goes): no key the car did not accept stays on the device.
          se.transmit(encodeControlFlowCommand({ success: false, reason: 'none' }));
          se.fieldLost();
          if (se.keys().length > 0) throw new Error('a refused key was kept');
        }),
        { numRuns: SECURED_RUNS },
      );
    },
    fuzzTimeoutMs(SECURED_RUNS, 60),
  );
});
