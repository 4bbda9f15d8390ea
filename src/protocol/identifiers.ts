import { asBuffer, checkLength } from './bytes.js';
import { sha1, sha256 } from './crypto/kdf.js';
import { P256_POINT_LENGTH } from './crypto/p256.js';
import { ProtocolError } from './errors.js';

/**
 * Key identifier function, a profile parameter (§4.6 **[stand-in]**):
 * - `sha256-8`: `SHA-256(pk65)[0:8]`, this project's default; hex of it is the server's keyId;
 * - `home-key-sha1-6`: `SHA-1(pk65)[0:6]`, Home-Key compatible, used by `transaction-profile.json`.
 */
export type KeyIdentifierProfile = 'sha256-8' | 'home-key-sha1-6';

export const DEFAULT_KEY_IDENTIFIER_PROFILE: KeyIdentifierProfile = 'sha256-8';

export const KEY_IDENTIFIER_LENGTHS: Readonly<Record<KeyIdentifierProfile, number>> = {
  'sha256-8': 8,
  'home-key-sha1-6': 6,
};

export const VEHICLE_IDENTIFIER_LENGTH = 8;
export const READER_INDEX_LENGTH = 8;
export const READER_IDENTIFIER_LENGTH = VEHICLE_IDENTIFIER_LENGTH + READER_INDEX_LENGTH;

/** Key identifier of an endpoint public key (65-byte uncompressed point). */
export function keyIdentifier(
  endpointPublicPoint: Uint8Array,
  profile: KeyIdentifierProfile = DEFAULT_KEY_IDENTIFIER_PROFILE,
): Buffer {
  if (endpointPublicPoint.length !== P256_POINT_LENGTH || endpointPublicPoint[0] !== 0x04) {
    throw new ProtocolError('bad-point', 'key identifier needs a 65-byte uncompressed point');
  }
  const length = KEY_IDENTIFIER_LENGTHS[profile];
  const digest = profile === 'sha256-8' ? sha256(endpointPublicPoint) : sha1(endpointPublicPoint);
  return digest.subarray(0, length);
}

/** reader id = vehicle identifier(8) ‖ reader index(8) (§4.2, §4.6). */
export function readerIdentifier(vehicleIdentifier: Uint8Array, readerIndex: Uint8Array): Buffer {
  checkLength(vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
  checkLength(readerIndex, READER_INDEX_LENGTH, 'reader index');
  return Buffer.concat([vehicleIdentifier, readerIndex]);
}

export interface ReaderIdentifierParts {
  readonly vehicleIdentifier: Buffer;
  readonly readerIndex: Buffer;
}

export function splitReaderIdentifier(readerId: Uint8Array): ReaderIdentifierParts {
  checkLength(readerId, READER_IDENTIFIER_LENGTH, 'reader id');
  const bytes = asBuffer(readerId);
  return {
    vehicleIdentifier: bytes.subarray(0, VEHICLE_IDENTIFIER_LENGTH),
    readerIndex: bytes.subarray(VEHICLE_IDENTIFIER_LENGTH),
  };
}
