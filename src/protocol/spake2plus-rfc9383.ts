import { createHmac } from 'node:crypto';
import { hkdfSha256, sha256 } from './crypto/kdf.js';
import { aesCmac } from './crypto/cmac.js';
import { spake2PlusConstants } from './spake2plus-group.js';

/** RFC 9383 SPAKE2+ P-256 ciphersuites this module implements (RFC 9383 §4). */
export type Spake2PlusSuite = 'P256-SHA256-HKDF-SHA256-HMAC-SHA256' | 'P256-SHA256-HKDF-SHA256-CMAC-AES-128';

/** Confirmation-key length per suite: Nh for HMAC-SHA256, the AES-128 key size for CMAC. */
const CONFIRMATION_KEY_LENGTH: Record<Spake2PlusSuite, number> = {
  'P256-SHA256-HKDF-SHA256-HMAC-SHA256': 32,
  'P256-SHA256-HKDF-SHA256-CMAC-AES-128': 16,
};
const SHARED_KEY_LENGTH = 32;

/** `len(a)‖a‖len(b)‖b…` with 8-byte little-endian lengths (RFC 9383 §3.3, PROTOCOL.md §3.3). */
export function encodeTranscript(parts: readonly Uint8Array[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(part.length));
    chunks.push(length, Buffer.from(part));
  }
  return Buffer.concat(chunks);
}

export interface Rfc9383TranscriptInput {
  context: Uint8Array;
  idProver: Uint8Array;
  idVerifier: Uint8Array;
  X: Uint8Array;
  Y: Uint8Array;
  Z: Uint8Array;
  V: Uint8Array;
  w0: Uint8Array;
}

/** TT = Context, idProver, idVerifier, M, N, shareP, shareV, Z, V, w0, each length-prefixed (RFC 9383 §3.3). */
export function rfc9383Transcript(input: Rfc9383TranscriptInput): Buffer {
  const { M, N } = spake2PlusConstants();
  const { context, idProver, idVerifier, X, Y, Z, V, w0 } = input;
  return encodeTranscript([context, idProver, idVerifier, M, N, X, Y, Z, V, w0]);
}

export interface Rfc9383Keys {
  TT: Buffer;
  kMain: Buffer;
  kConfirmP: Buffer;
  kConfirmV: Buffer;
  /** MAC(K_confirmP, shareV), sent by the prover. */
  confirmP: Buffer;
  /** MAC(K_confirmV, shareP), sent by the verifier. */
  confirmV: Buffer;
  kShared: Buffer;
}

function mac(suite: Spake2PlusSuite, key: Buffer, message: Uint8Array): Buffer {
  return suite === 'P256-SHA256-HKDF-SHA256-HMAC-SHA256'
    ? createHmac('sha256', key).update(message).digest()
    : aesCmac(key, message);
}

/** RFC 9383 §3.4 key schedule; the caller compares received confirmations in constant time. */
export function rfc9383KeySchedule(suite: Spake2PlusSuite, input: Rfc9383TranscriptInput): Rfc9383Keys {
  const TT = rfc9383Transcript(input);
  const kMain = sha256(TT);
  const keyLength = CONFIRMATION_KEY_LENGTH[suite];
  const confirmationKeys = hkdfSha256(kMain, undefined, Buffer.from('ConfirmationKeys', 'ascii'), 2 * keyLength);
  const kConfirmP = confirmationKeys.subarray(0, keyLength);
  const kConfirmV = confirmationKeys.subarray(keyLength);
  return {
    TT,
    kMain,
    kConfirmP,
    kConfirmV,
    confirmP: mac(suite, kConfirmP, input.Y),
    confirmV: mac(suite, kConfirmV, input.X),
    kShared: hkdfSha256(kMain, undefined, Buffer.from('SharedKey', 'ascii'), SHARED_KEY_LENGTH),
  };
}
