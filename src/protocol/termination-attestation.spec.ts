import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { P256KeyPair } from './crypto/p256.js';
import { ProtocolError } from './errors.js';
import {
  TERMINATION_PROOF_LENGTH,
  decodeTerminationProof,
  encodeTerminationProof,
  terminationAttestationMessage,
  verifyTerminationAttestation,
} from './termination-attestation.js';

describe('termination attestation (PROTOCOL.md §5)', () => {
  const vehicleIdentifier = Buffer.from('0102030405060708', 'hex');
  const keyIdentifier = Buffer.from('a1a2a3a4a5a6a7a8', 'hex');

  it('signs "TERMINATED" ‖ vehicle ‖ key ‖ counter ‖ time and survives the wire encoding', () => {
    const endpoint = P256KeyPair.generate();
    const message = terminationAttestationMessage(vehicleIdentifier, keyIdentifier, 7n, 1_796_000_000_000);
    expect(message.subarray(0, 10).toString('ascii')).toBe('TERMINATED');
    expect(message.length).toBe(10 + 8 + 8 + 8 + 8);
    const proof = decodeTerminationProof(
      encodeTerminationProof({ counter: 7n, unixMs: 1_796_000_000_000, signature: endpoint.sign(message) }),
    );
    const attestation = {
      vehicleIdentifier,
      keyIdentifier,
      endpointPublicKey: Buffer.from(endpoint.publicPoint),
      ...proof,
    };
    expect(verifyTerminationAttestation(attestation)).toBe(true);
    expect(verifyTerminationAttestation({ ...attestation, counter: 8n })).toBe(false);
    expect(verifyTerminationAttestation(attestation, P256KeyPair.generate().publicKey)).toBe(false);
  });

  it('decodes only 80-byte proofs and throws nothing but ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        try {
          const proof = decodeTerminationProof(bytes);
          expect(bytes.length).toBe(TERMINATION_PROOF_LENGTH);
          expect(encodeTerminationProof(proof).equals(Buffer.from(bytes))).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
