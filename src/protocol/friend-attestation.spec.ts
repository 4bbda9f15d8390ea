import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { P256KeyPair } from './crypto/p256.js';
import { ENTITLEMENT_PROFILES, encodeEntitlements } from './entitlements.js';
import { ProtocolError } from './errors.js';
import {
  decodeSignedFriendAttestation,
  encodeFriendAttestation,
  signFriendAttestation,
  verifyFriendAttestation,
  type FriendAttestation,
} from './friend-attestation.js';
import { RUNS, bytes, mutated } from '../../test/support/property-testing.js';

function attestation(): FriendAttestation {
  return {
    vehicleIdentifier: Buffer.from('0102030405060708', 'hex'),
    endpointPublicKey: Buffer.from(P256KeyPair.generate().publicPoint),
    entitlements: encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY),
    notBefore: new Date('2026-12-01T08:00:00Z'),
    notAfter: new Date('2026-12-24T20:00:00Z'),
    ownerKeyId: Buffer.from('a1a2a3a4a5a6a7a8', 'hex'),
  };
}

describe('friend attestation (PROTOCOL.md §7)', () => {
  it('encodes the DER of §7 and round-trips through signing', () => {
    const owner = P256KeyPair.generate();
    const original = attestation();
    const der = encodeFriendAttestation(original);
    // SEQUENCE with a long-form length (the body is 129 bytes), then version INTEGER 1
    expect(der.subarray(0, 3).toString('hex')).toBe('308181');
    expect(der.length).toBe(3 + 129);
    expect(der.subarray(3, 6).toString('hex')).toBe('020101');
    expect(der.includes(Buffer.from('20261201080000Z', 'ascii'))).toBe(true);
    const signed = decodeSignedFriendAttestation(signFriendAttestation(original, owner));
    expect(signed.attestation).toEqual(original);
    expect(verifyFriendAttestation(signed, owner.publicKey)).toBe(true);
    expect(verifyFriendAttestation(signed, P256KeyPair.generate().publicKey)).toBe(false);
  });

  it('refuses an altered attestation and bad windows', () => {
    const owner = P256KeyPair.generate();
    const bytes = signFriendAttestation(attestation(), owner);
    const index = bytes.indexOf(Buffer.from('010101', 'hex'));
    const altered = Buffer.from(bytes);
    altered[index + 2] = 0x0d; // unlock-only → unlock-and-drive
    const decoded = decodeSignedFriendAttestation(altered);
    expect(verifyFriendAttestation(decoded, owner.publicKey)).toBe(false);
    expect(() => encodeFriendAttestation({ ...attestation(), notAfter: new Date('2026-11-01T00:00:00Z') })).toThrow(
      ProtocolError,
    );
  });

  it('throws nothing but ProtocolError on random or mutated input', () => {
    const valid = signFriendAttestation(attestation(), P256KeyPair.generate());
    fc.assert(
      fc.property(fc.oneof(bytes(300), mutated(fc.constant(valid))), (input) => {
        try {
          const decoded = decodeSignedFriendAttestation(input);
          expect(decoded.signature.length).toBe(64);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      RUNS,
    );
  });
});
