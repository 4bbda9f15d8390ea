import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { P256KeyPair } from './crypto/p256.js';
import { sha256 } from './crypto/kdf.js';
import {
  decodeKtsReceipt,
  encodeKtsReceipt,
  ktsReceiptMessage,
  ktsReceiptMessageFromDigest,
  KTS_RECEIPT_LENGTH,
} from './kts-receipt.js';

describe('KTS receipt (PROTOCOL.md §3.4)', () => {
  const fields = {
    vehicleIdentifier: Buffer.from('0102030405060708', 'hex'),
    keyIdentifier: Buffer.from('a1a2a3a4a5a6a7a8', 'hex'),
    endpointCertificateDer: Buffer.from('3003020101', 'hex'),
    issuedAtMs: 1_796_000_000_000,
  };

  it('lays out label, identifiers, certificate hash and time', () => {
    const message = ktsReceiptMessage(fields);
    expect(message.subarray(0, 7).toString('ascii')).toBe('KTS-REG');
    expect(message.subarray(7, 15).toString('hex')).toBe('0102030405060708');
    expect(message.subarray(15, 23).toString('hex')).toBe('a1a2a3a4a5a6a7a8');
    expect(message.length).toBe(7 + 8 + 8 + 32 + 8);
    expect(message.readBigUInt64BE(55)).toBe(1_796_000_000_000n);
  });

  it('builds the same message from the certificate digest a car keeps after pairing', () => {
    const { endpointCertificateDer, ...rest } = fields;
    const fromDigest = ktsReceiptMessageFromDigest({
      ...rest,
      endpointCertificateDigest: sha256(endpointCertificateDer),
    });
    expect(fromDigest.equals(ktsReceiptMessage(fields))).toBe(true);
    expect(() => ktsReceiptMessageFromDigest({ ...rest, endpointCertificateDigest: Buffer.alloc(31) })).toThrow(
      ProtocolError,
    );
  });

  it('signs and verifies, and a changed certificate breaks it', () => {
    const kts = P256KeyPair.generate();
    const signature = kts.sign(ktsReceiptMessage(fields));
    const receipt = decodeKtsReceipt(encodeKtsReceipt({ issuedAtMs: fields.issuedAtMs, signature }));
    expect(receipt.issuedAtMs).toBe(fields.issuedAtMs);
    const publicKey = kts.publicKey;
    expect(publicKey.verify(ktsReceiptMessage(fields), receipt.signature)).toBe(true);
    const other = { ...fields, endpointCertificateDer: Buffer.from('3003020102', 'hex') };
    expect(publicKey.verify(ktsReceiptMessage(other), receipt.signature)).toBe(false);
  });

  it('decodes only well-formed receipts and throws nothing but ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        try {
          const receipt = decodeKtsReceipt(bytes);
          expect(bytes.length).toBe(KTS_RECEIPT_LENGTH);
          expect(encodeKtsReceipt(receipt).equals(Buffer.from(bytes))).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
