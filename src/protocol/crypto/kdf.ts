import { createHash, createHmac } from 'node:crypto';
import { checkInteger } from '../bytes.js';
import { ProtocolError } from '../errors.js';

const SHA256_LENGTH = 32;
const EMPTY = Buffer.alloc(0);
/** Longest HKDF info accepted: node:crypto's own `hkdf` limit, kept so callers may use either. */
export const MAX_HKDF_INFO_LENGTH = 1024;
/** HKDF-Expand's one-byte block counters 1…255. */
const COUNTERS = Array.from({ length: 255 }, (_, i) => Buffer.from([i + 1]));

/**
 * ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1): `SHA-256(Z ‖ counter(4) ‖ sharedInfo)` for
 * counter = 1, 2, … truncated to `length`. §4.3 uses it for Kdh with sharedInfo = txid.
 */
export function x963KdfSha256(z: Uint8Array, sharedInfo: Uint8Array, length: number): Buffer {
  checkInteger(length, 0, SHA256_LENGTH * 0xffff, 'X9.63 output length');
  const blocks = Math.ceil(length / SHA256_LENGTH);
  const out = Buffer.allocUnsafe(blocks * SHA256_LENGTH);
  const counter = Buffer.allocUnsafe(4);
  for (let i = 0; i < blocks; i++) {
    counter.writeUInt32BE(i + 1, 0);
    createHash('sha256')
      .update(z)
      .update(counter)
      .update(sharedInfo)
      .digest()
      .copy(out, i * SHA256_LENGTH);
  }
  return out.subarray(0, length);
}

/** HKDF-SHA256 (RFC 5869); `salt` none = empty, which RFC 5869 treats as 32 zero bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array | undefined, info: Uint8Array, length: number): Buffer {
  checkInteger(length, 1, 255 * SHA256_LENGTH, 'HKDF output length');
  if (info.length > MAX_HKDF_INFO_LENGTH) throw new ProtocolError('length', 'HKDF info longer than 1024 bytes');
  // Extract and expand with HMAC directly: node's hkdfSync wraps every IKM in a KeyObject first,
  // which costs more than the three HMACs of a 64-byte output (the fast transaction, §4.4).
  const prk = createHmac('sha256', salt ?? EMPTY)
    .update(ikm)
    .digest();
  const out = Buffer.alloc(length);
  let previous = EMPTY;
  for (let i = 0, offset = 0; offset < length; i++, offset += SHA256_LENGTH) {
    previous = createHmac('sha256', prk).update(previous).update(info).update(COUNTERS[i]).digest();
    previous.copy(out, offset, 0, Math.min(SHA256_LENGTH, length - offset));
  }
  return out;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}
