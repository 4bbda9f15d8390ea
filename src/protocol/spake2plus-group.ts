import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ProtocolError } from './errors.js';

// SPAKE2+ group arithmetic on P-256 (RFC 9383 §3, §4); noble is used for point arithmetic only.

const Point = p256.Point;
type GroupElement = typeof Point.BASE;

/** Order n of the P-256 base point. */
export const P256_ORDER: bigint = Point.Fn.ORDER;
export const SCALAR_LENGTH = 32;
/** Uncompressed SEC1 point `04‖x‖y` (PROTOCOL.md notation). */
export const POINT_LENGTH = 65;

/** RFC 9383 §4 constants for P-256, compressed SEC1 (the form the RFC publishes). */
export const SPAKE2PLUS_P256_M_HEX = '02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f';
export const SPAKE2PLUS_P256_N_HEX = '03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49';

const G = Point.BASE;
// Fixed points used in every run: precompute tables on first use, as noble does for G.
const M = Point.fromHex(SPAKE2PLUS_P256_M_HEX).precompute(8);
const N = Point.fromHex(SPAKE2PLUS_P256_N_HEX).precompute(8);

/** Uncompressed encodings of M and N, as they enter the RFC 9383 transcript. */
export function spake2PlusConstants(): { M: Buffer; N: Buffer } {
  return { M: encodePoint(M), N: encodePoint(N) };
}

/** Big-endian 32-byte scalar in [1, n−1]; anything else is rejected, never reduced. */
export function decodeScalar(bytes: Uint8Array, name: string): bigint {
  if (bytes.length !== SCALAR_LENGTH) {
    throw new ProtocolError('length', `${name} must be ${SCALAR_LENGTH} bytes, got ${bytes.length}`);
  }
  const value = BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
  if (value === 0n || value >= P256_ORDER) throw new ProtocolError('malformed', `${name} is not in [1, n-1]`);
  return value;
}

export function encodeScalar(value: bigint): Buffer {
  return Buffer.from(value.toString(16).padStart(SCALAR_LENGTH * 2, '0'), 'hex');
}

/** Uniform scalar in [1, n−1] by rejection sampling (a retry happens with probability ≈ 2^-32). */
export function randomScalar(random: (size: number) => Uint8Array = randomBytes): Buffer {
  for (;;) {
    const candidate = Buffer.from(random(SCALAR_LENGTH));
    const value = BigInt(`0x${candidate.toString('hex')}`);
    if (value !== 0n && value < P256_ORDER) return candidate;
  }
}

/**
 * Parses an untrusted share or public point: exactly 65 bytes, `04` prefix, coordinates below p,
 * on the curve, not the identity (RFC 9383 §3.3, PROTOCOL.md §3.3). Only ProtocolError escapes.
 */
function decodePoint(bytes: Uint8Array, name: string): GroupElement {
  if (bytes.length !== POINT_LENGTH) {
    throw new ProtocolError('length', `${name} must be ${POINT_LENGTH} bytes, got ${bytes.length}`);
  }
  if (bytes[0] !== 0x04) throw new ProtocolError('bad-point', `${name} is not an uncompressed point`);
  let point: GroupElement;
  try {
    point = Point.fromBytes(Uint8Array.from(bytes));
    point.assertValidity();
  } catch {
    throw new ProtocolError('bad-point', `${name} is not a point on P-256`);
  }
  if (point.is0()) throw new ProtocolError('bad-point', `${name} is the identity`);
  return point;
}

function encodePoint(point: GroupElement): Buffer {
  if (point.is0()) throw new ProtocolError('bad-point', 'cannot encode the identity');
  return Buffer.from(point.toBytes(false));
}

/** Validates a share (X or Y) and returns a canonical copy. */
export function parseShare(bytes: Uint8Array): Buffer {
  return encodePoint(decodePoint(bytes, 'share'));
}

/** L = w1·G (RFC 9383 §3.2), the verifier's registration record. */
export function computeL(w1: Uint8Array): Buffer {
  return encodePoint(G.multiply(decodeScalar(w1, 'w1')));
}

/** Prover share X = x·G + w0·M (RFC 9383 §3.3). */
export function computeProverShare(w0: Uint8Array, x: Uint8Array): Buffer {
  return encodePoint(G.multiply(decodeScalar(x, 'x')).add(M.multiply(decodeScalar(w0, 'w0'))));
}

/** Verifier share Y = y·G + w0·N (RFC 9383 §3.3). */
export function computeVerifierShare(w0: Uint8Array, y: Uint8Array): Buffer {
  return encodePoint(G.multiply(decodeScalar(y, 'y')).add(N.multiply(decodeScalar(w0, 'w0'))));
}

export interface SharedPoints {
  Z: Buffer;
  V: Buffer;
}

/** Prover side: Z = h·x·(Y − w0·N), V = h·w1·(Y − w0·N); h = 1 on P-256 (RFC 9383 §3.4). */
export function computeProverPoints(w0: Uint8Array, w1: Uint8Array, x: Uint8Array, Y: Uint8Array): SharedPoints {
  const unblinded = decodePoint(Y, 'Y').subtract(N.multiply(decodeScalar(w0, 'w0')));
  if (unblinded.is0()) throw new ProtocolError('bad-point', 'Y − w0·N is the identity');
  return {
    Z: encodePoint(unblinded.multiply(decodeScalar(x, 'x'))),
    V: encodePoint(unblinded.multiply(decodeScalar(w1, 'w1'))),
  };
}

/** Verifier side: Z = h·y·(X − w0·M), V = h·y·L (RFC 9383 §3.4). */
export function computeVerifierPoints(w0: Uint8Array, L: Uint8Array, y: Uint8Array, X: Uint8Array): SharedPoints {
  const unblinded = decodePoint(X, 'X').subtract(M.multiply(decodeScalar(w0, 'w0')));
  if (unblinded.is0()) throw new ProtocolError('bad-point', 'X − w0·M is the identity');
  const scalar = decodeScalar(y, 'y');
  return { Z: encodePoint(unblinded.multiply(scalar)), V: encodePoint(decodePoint(L, 'L').multiply(scalar)) };
}
