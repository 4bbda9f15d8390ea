import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import vectors from '../../test/fixtures/vectors/transaction-profile.json';
import { parseCommandApdu } from './apdu.js';
import { fromHex, toHex } from './bytes.js';
import { EphemeralKeyPair, P256KeyPair, P256PublicKey } from './crypto/p256.js';
import { ProtocolError } from './errors.js';
import { keyIdentifier } from './identifiers.js';
import { SecureChannel } from './secure-channel.js';
import {
  auth0Flags,
  checkSelectedVersion,
  deriveFastKeys,
  deriveKdh,
  deriveStandardKeys,
  deriveStandardKeysFromKdh,
  encodeAuth0Command,
  encodeAuth0Response,
  encodeAuth1Command,
  encodeAuth1Response,
  encodeControlFlowCommand,
  encodeSelectCommand,
  encodeSelectResponse,
  EXCHANGE_HEADER,
  fastKeyInfo,
  KEY_LABEL,
  matchFastCryptogram,
  negotiateVersion,
  parseAuth0Command,
  parseAuth0Response,
  parseAuth1Command,
  parseAuth1Response,
  parseControlFlowCommand,
  parseSelectCommand,
  parseSelectResponse,
  signatureInput,
  standardKeyInfo,
  TRANSACTION_APPLET_AID,
  transactionContext,
  verifyDeviceAuthentication,
  verifyReaderAuthentication,
  type Auth0Command,
  type FastContext,
  type TransactionContext,
} from './transaction.js';

const input = vectors.inputs;
const std = vectors.standard;
const fast = vectors.fast;
const h = fromHex;

const deviceVersions = input.device_versions.map((v) => parseInt(v, 16));
const flags = h(input.flags_p1p2);

const auth0: Auth0Command = {
  requestFast: flags[0] === 1,
  transactionCode: 'unlock',
  selectedVersion: parseInt(input.selected_version, 16),
  readerEphemeralPublicKey: h(input.reader_eph_pk),
  transactionId: h(input.transaction_id),
  readerId: h(input.reader_id),
};

const context: TransactionContext = transactionContext(
  auth0,
  { endpointEphemeralPublicKey: h(input.endpoint_eph_pk) },
  deviceVersions,
);

const fastContext: FastContext = {
  readerId: h(input.reader_id),
  readerEphemeralPublicKey: h(fast.reader_eph2_pk),
  endpointEphemeralPublicKey: h(fast.endpoint_eph2_pk),
  transactionId: h(fast.transaction_id2),
  p1: flags[0],
  p2: flags[1],
  selectedVersion: parseInt(input.selected_version, 16),
  deviceVersions,
  readerLongTermPublicKey: h(input.reader_lt_pk),
  endpointLongTermPublicKey: h(input.endpoint_lt_pk),
};

/** RFC 6979 deterministic ECDSA, not low-S normalised, as the vectors were made (§4.3). */
function deterministicSign(message: Buffer, secretKeyHex: string): string {
  return toHex(p256.sign(message, h(secretKeyHex), { lowS: false, prehash: true }));
}

describe('transaction vectors (transaction-profile.json)', () => {
  it('derives every input public key from its private scalar', () => {
    expect(toHex(P256KeyPair.fromPrivateScalar(h(input.reader_lt_sk)).publicPoint)).toBe(input.reader_lt_pk);
    expect(toHex(P256KeyPair.fromPrivateScalar(h(input.endpoint_lt_sk)).publicPoint)).toBe(input.endpoint_lt_pk);
    expect(toHex(EphemeralKeyPair.fromPrivateScalar(h(input.reader_eph_sk)).publicPoint)).toBe(input.reader_eph_pk);
    expect(toHex(EphemeralKeyPair.fromPrivateScalar(h(input.endpoint_eph_sk)).publicPoint)).toBe(input.endpoint_eph_pk);
    expect(toHex(EphemeralKeyPair.fromPrivateScalar(h(fast.reader_eph2_sk)).publicPoint)).toBe(fast.reader_eph2_pk);
    expect(toHex(EphemeralKeyPair.fromPrivateScalar(h(fast.endpoint_eph2_sk)).publicPoint)).toBe(fast.endpoint_eph2_pk);
  });

  it('encodes the AUTH0 APDU and parses it back', () => {
    expect(auth0Flags(auth0.requestFast, auth0.transactionCode)).toEqual({ p1: flags[0], p2: flags[1] });
    const apdu = encodeAuth0Command(auth0);
    expect(toHex(apdu)).toBe(std.AUTH0_apdu);
    expect(parseAuth0Command(h(std.AUTH0_apdu))).toEqual(auth0);
  });

  it('builds both signature inputs', () => {
    expect(toHex(signatureInput('reader', context))).toBe(std.reader_sig_input);
    const deviceInput = signatureInput('device', context);
    // Same bytes except the usage value.
    expect(toHex(deviceInput)).toBe(std.reader_sig_input.replace(/415d9569$/, '4e887b4c'));
  });

  it('reproduces the reader and device signatures (RFC 6979) and verifies them with node:crypto', () => {
    const readerSig = deterministicSign(signatureInput('reader', context), input.reader_lt_sk);
    const deviceSig = deterministicSign(signatureInput('device', context), input.endpoint_lt_sk);
    expect(readerSig).toBe(std.reader_sig);
    expect(deviceSig).toBe(std.device_sig);

    const vehicle = P256PublicKey.fromPoint(h(input.reader_lt_pk));
    const endpoint = P256PublicKey.fromPoint(h(input.endpoint_lt_pk));
    expect(verifyReaderAuthentication(vehicle, context, h(std.reader_sig))).toBe(true);
    expect(verifyDeviceAuthentication(endpoint, context, h(std.device_sig))).toBe(true);
    // Swapped usages must not verify.
    expect(verifyReaderAuthentication(vehicle, context, h(std.device_sig))).toBe(false);
    expect(verifyDeviceAuthentication(endpoint, context, h(std.reader_sig))).toBe(false);
  });

  it('node:crypto signatures verify too (randomised nonces)', () => {
    const vehicleKey = P256KeyPair.fromPrivateScalar(h(input.reader_lt_sk));
    const signature = vehicleKey.sign(signatureInput('reader', context));
    expect(signature).toHaveLength(64);
    expect(verifyReaderAuthentication(vehicleKey.publicKey, context, signature)).toBe(true);
  });

  it('computes the ECDH x coordinate on both sides', () => {
    const reader = EphemeralKeyPair.fromPrivateScalar(h(input.reader_eph_sk));
    const endpoint = EphemeralKeyPair.fromPrivateScalar(h(input.endpoint_eph_sk));
    expect(toHex(reader.sharedSecretX(h(input.endpoint_eph_pk)))).toBe(std.ecdh_x);
    expect(toHex(endpoint.sharedSecretX(h(input.reader_eph_pk)))).toBe(std.ecdh_x);
  });

  it('runs the standard key schedule', () => {
    expect(toHex(deriveKdh(h(std.ecdh_x), h(input.transaction_id)))).toBe(std.Kdh);
    expect(toHex(standardKeyInfo(context, KEY_LABEL.VOLATILE))).toBe(std.info_volatile);
    const keys = deriveStandardKeys(h(std.ecdh_x), context);
    expect(toHex(keys.kenc)).toBe(std.Kenc);
    expect(toHex(keys.kmac)).toBe(std.Kmac);
    expect(toHex(keys.krmac)).toBe(std.Krmac);
    expect(toHex(keys.kpersistent)).toBe(std.Kpersistent);
    expect(deriveStandardKeysFromKdh(h(std.Kdh), context)).toEqual(keys);
  });

  it('produces the encrypted AUTH1 response with its R-MAC (counter 0)', () => {
    const keyId = keyIdentifier(h(input.endpoint_lt_pk), 'home-key-sha1-6');
    expect(toHex(keyId)).toBe(input.endpoint_id_sha1_6);
    const plaintext = encodeAuth1Response({ keyIdentifier: keyId, deviceSignature: h(std.device_sig) });
    expect(toHex(plaintext.subarray(0, 10))).toBe(std.AUTH1_response_plaintext_prefix);

    const keys = deriveStandardKeys(h(std.ecdh_x), context);
    const device = SecureChannel.afterAuth1(keys, 'device');
    expect(toHex(device.wrapResponse(plaintext))).toBe(std.AUTH1_response_data);

    const reader = SecureChannel.afterAuth1(keys, 'reader');
    const decrypted = reader.unwrapResponse(h(std.AUTH1_response_data));
    expect(decrypted).toEqual(plaintext);
    expect(parseAuth1Response(decrypted, 'home-key-sha1-6')).toEqual({
      keyIdentifier: keyId,
      deviceSignature: h(std.device_sig),
    });
  });

  it('produces the EXCHANGE APDU at counter 1 and its full C-MAC (the new MCV)', () => {
    const keys = deriveStandardKeys(h(std.ecdh_x), context);
    const reader = SecureChannel.afterAuth1(keys, 'reader');
    reader.unwrapResponse(h(std.AUTH1_response_data));
    expect(reader.counter).toBe(1);
    // The R-MAC of the AUTH1 response does not chain: the C-MAC is computed over the zero MCV.
    expect(toHex(reader.macChainingValue)).toBe('00'.repeat(16));
    const apdu = reader.wrapCommand(EXCHANGE_HEADER, h(std.EXCHANGE_plaintext_ctr1));
    expect(toHex(apdu)).toBe(std.EXCHANGE_apdu);
    expect(toHex(reader.macChainingValue)).toBe(std.EXCHANGE_full_cmac);

    const device = SecureChannel.afterAuth1(keys, 'device');
    device.wrapResponse(
      encodeAuth1Response({ keyIdentifier: h(input.endpoint_id_sha1_6), deviceSignature: h(std.device_sig) }),
    );
    expect(toHex(device.unwrapCommand(h(std.EXCHANGE_apdu), EXCHANGE_HEADER))).toBe(std.EXCHANGE_plaintext_ctr1);
    expect(toHex(device.macChainingValue)).toBe(std.EXCHANGE_full_cmac);
  });

  it('runs the fast key schedule of the following transaction', () => {
    expect(toHex(fastKeyInfo(fastContext))).toBe(fast.info_fast);
    const keys = deriveFastKeys(h(std.Kpersistent), fastContext);
    expect(toHex(keys.cryptogram)).toBe(fast.cryptogram);
    expect(toHex(keys.kenc)).toBe(fast.Kenc);
    expect(toHex(keys.kmac)).toBe(fast.Kmac);
    expect(toHex(keys.krmac)).toBe(fast.Krmac);
  });

  it('lets the car find the endpoint by its cryptogram', () => {
    const other = { name: 'other', kpersistent: Buffer.alloc(32, 7), endpointLongTermPublicKey: h(input.reader_lt_pk) };
    const owner = {
      name: 'owner',
      kpersistent: h(std.Kpersistent),
      endpointLongTermPublicKey: h(input.endpoint_lt_pk),
    };
    const match = matchFastCryptogram(
      [other, owner],
      fastContext,
      fastContext.readerLongTermPublicKey,
      h(fast.cryptogram),
    );
    expect(match?.candidate.name).toBe('owner');
    expect(toHex(match!.keys.kenc)).toBe(fast.Kenc);
    const wrong = Buffer.from(h(fast.cryptogram));
    wrong[15] ^= 1;
    expect(
      matchFastCryptogram([other, owner], fastContext, fastContext.readerLongTermPublicKey, wrong),
    ).toBeUndefined();
  });

  it('fails the vectors when a single input byte differs', () => {
    const altered = { ...context, transactionId: Buffer.from(context.transactionId) };
    altered.transactionId[0] ^= 1;
    expect(toHex(deriveStandardKeys(h(std.ecdh_x), altered).kenc)).not.toBe(std.Kenc);
    expect(toHex(signatureInput('reader', altered))).not.toBe(std.reader_sig_input);
  });
});

describe('transaction messages', () => {
  it('SELECT command and response', () => {
    const select = encodeSelectCommand();
    expect(toHex(select)).toBe('00a404000d' + toHex(TRANSACTION_APPLET_AID) + '00');
    expect(parseSelectCommand(select)).toEqual(TRANSACTION_APPLET_AID);
    expect(toHex(encodeSelectResponse())).toBe('5c0402000100');
    expect(parseSelectResponse(h('5c0402000100'))).toEqual([0x0200, 0x0100]);
    expect(() => parseSelectResponse(h('5c03020001'))).toThrow(ProtocolError);
  });

  it('AUTH0 response with and without cryptogram', () => {
    const withCryptogram = { endpointEphemeralPublicKey: h(input.endpoint_eph_pk), cryptogram: h(fast.cryptogram) };
    expect(parseAuth0Response(encodeAuth0Response(withCryptogram))).toEqual(withCryptogram);
    const standardOnly = { endpointEphemeralPublicKey: h(input.endpoint_eph_pk) };
    expect(parseAuth0Response(encodeAuth0Response(standardOnly))).toEqual(standardOnly);
  });

  it('AUTH1 command', () => {
    const apdu = encodeAuth1Command(h(std.reader_sig));
    expect(toHex(apdu)).toBe('8081000042' + '9e40' + std.reader_sig);
    expect(parseAuth1Command(apdu)).toEqual(h(std.reader_sig));
  });

  it('AUTH1 response with mailbox subsets, and key id length per profile', () => {
    const response = {
      keyIdentifier: Buffer.alloc(8, 1),
      deviceSignature: h(std.device_sig),
      confidentialMailbox: Buffer.alloc(32, 2),
      privateMailbox: Buffer.alloc(200, 3),
    };
    expect(parseAuth1Response(encodeAuth1Response(response), 'sha256-8')).toEqual(response);
    expect(() => parseAuth1Response(encodeAuth1Response(response), 'home-key-sha1-6')).toThrow(ProtocolError);
  });

  it('CONTROL FLOW', () => {
    const apdu = encodeControlFlowCommand({ success: false, reason: 'entitlement-denied' });
    expect(toHex(apdu)).toBe('803c0003');
    expect(parseControlFlowCommand(apdu)).toEqual({ success: false, reason: 'entitlement-denied' });
    expect(toHex(encodeControlFlowCommand({ success: false, reason: 'invalid-point' }))).toBe('803c000c');
    expect(toHex(encodeControlFlowCommand({ success: true, reason: 'none' }))).toBe('803c0100');
    expect(() => parseControlFlowCommand(h('803c0007'))).toThrow(ProtocolError);
  });

  it('AUTH0 parser rejects wrong headers, codes, lengths and unknown tags', () => {
    const valid = h(std.AUTH0_apdu);
    const withP2 = (p2: number): Buffer => Buffer.concat([valid.subarray(0, 3), Buffer.from([p2]), valid.subarray(4)]);
    expect(parseAuth0Command(withP2(0x03)).transactionCode).toBe('engine-start');
    expect(() => parseAuth0Command(withP2(0x05))).toThrow(ProtocolError);
    expect(() => parseAuth0Command(Buffer.concat([h('84'), valid.subarray(1)]))).toThrow(ProtocolError);
    const parsed = parseCommandApdu(valid);
    const extra = Buffer.concat([parsed.data, h('010100')]);
    const apdu = Buffer.concat([valid.subarray(0, 4), Buffer.from([extra.length]), extra]);
    expect(() => parseAuth0Command(apdu)).toThrow(expect.objectContaining({ code: 'unexpected-tag' }));
    const offCurve = Buffer.from(valid);
    offCurve[11] = 0x02; // compressed-point prefix inside the 87 value
    expect(() => parseAuth0Command(offCurve)).toThrow(expect.objectContaining({ code: 'bad-point' }));
  });

  it('negotiates versions', () => {
    expect(negotiateVersion([0x0200, 0x0100], [0x0100, 0x0200])).toBe(0x0200);
    expect(negotiateVersion([0x0100], [0x0200, 0x0100])).toBe(0x0100);
    expect(negotiateVersion([0x0300, 0x0100], [0x0200, 0x0100])).toBe(0x0100);
    expect(() => negotiateVersion([0x0300], [0x0200, 0x0100])).toThrow(
      expect.objectContaining({ code: 'unsupported' }),
    );
    expect(() => checkSelectedVersion(0x0200, [0x0200, 0x0100])).not.toThrow();
    expect(() => checkSelectedVersion(0x0300, [0x0200, 0x0100])).toThrow(
      expect.objectContaining({ code: 'unsupported' }),
    );
  });
});
