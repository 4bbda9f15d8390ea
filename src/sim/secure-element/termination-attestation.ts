import { checkLength, u64 } from '../../protocol/bytes.js';
import { P256PublicKey } from '../../protocol/crypto/p256.js';
import { KEY_IDENTIFIER_LENGTHS } from '../../protocol/identifiers.js';
import { VEHICLE_IDENTIFIER_LENGTH } from '../../protocol/identifiers.js';

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
