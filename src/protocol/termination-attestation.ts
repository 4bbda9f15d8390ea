import { ByteReader, checkLength, u64 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { P256PublicKey } from './crypto/p256.js';
import { KEY_IDENTIFIER_LENGTHS, VEHICLE_IDENTIFIER_LENGTH } from './identifiers.js';

/** Domain label of the device-side deletion proof, PROTOCOL.md §5 **[stand-in]**. */
export const TERMINATION_ATTESTATION_LABEL = Buffer.from('TERMINATED', 'ascii');

/** What the SE signs when the user deletes a key in Wallet (§5), delivered to the server later. */
export interface TerminationAttestation {
  readonly vehicleIdentifier: Buffer;
  readonly keyIdentifier: Buffer;
  /** The key's transaction counter when it was terminated. */
  readonly counter: bigint;
  readonly unixMs: number;
  /** The endpoint public key (65 B), so a verifier can match it to the key it tracks. */
  readonly endpointPublicKey: Buffer;
  /** ECDSA-P256-SHA256 r‖s by the endpoint key over `terminationAttestationMessage`. */
  readonly signature: Buffer;
}

const KEY_IDENTIFIER_LENGTH_SET: readonly number[] = Object.values(KEY_IDENTIFIER_LENGTHS);

/** `"TERMINATED" ‖ vehicleIdentifier(8) ‖ keyId ‖ counter(8) ‖ unix-ms(8)` (§5). */
export function terminationAttestationMessage(
  vehicleIdentifier: Uint8Array,
  keyIdentifier: Uint8Array,
  counter: bigint,
  unixMs: number,
): Buffer {
  checkLength(vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
  if (!KEY_IDENTIFIER_LENGTH_SET.includes(keyIdentifier.length)) {
    checkLength(keyIdentifier, KEY_IDENTIFIER_LENGTHS['sha256-8'], 'key identifier');
  }
  return Buffer.concat([TERMINATION_ATTESTATION_LABEL, vehicleIdentifier, keyIdentifier, u64(counter), u64(unixMs)]);
}

/** Server-side check of an attestation against the endpoint key it tracks. */
export function verifyTerminationAttestation(
  attestation: TerminationAttestation,
  endpointPublicKey: P256PublicKey | Uint8Array = attestation.endpointPublicKey,
): boolean {
  const key =
    endpointPublicKey instanceof P256PublicKey ? endpointPublicKey : P256PublicKey.fromPoint(endpointPublicKey);
  const message = terminationAttestationMessage(
    attestation.vehicleIdentifier,
    attestation.keyIdentifier,
    attestation.counter,
    attestation.unixMs,
  );
  return key.verify(message, attestation.signature);
}

/** What travels to the server (the key and vehicle are known from the call): counter(8) ‖ unix-ms(8) ‖ r‖s(64). */
export interface TerminationProof {
  counter: bigint;
  unixMs: number;
  signature: Buffer;
}

export const TERMINATION_PROOF_LENGTH = 80;

export function encodeTerminationProof(proof: TerminationProof): Buffer {
  checkLength(proof.signature, 64, 'termination signature');
  return Buffer.concat([u64(proof.counter), u64(proof.unixMs), proof.signature]);
}

export function decodeTerminationProof(bytes: Uint8Array): TerminationProof {
  const reader = new ByteReader(bytes);
  const counter = reader.u64('counter');
  const unixMs = reader.u64('unix-ms');
  const signature = Buffer.from(reader.bytes(64, 'signature'));
  reader.expectEnd();
  if (unixMs > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('out-of-range', 'unix-ms too large');
  return { counter, unixMs: Number(unixMs), signature };
}
