import { timingSafeEqual } from 'node:crypto';

/**
 * Constant-time equality for MACs, cryptograms, evidences, fingerprints and request hashes: the
 * one comparison for values an attacker could learn byte by byte from timing. Unequal lengths
 * compare false (the length itself is not secret: it is fixed by the protocol).
 */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const left = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
  const right = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  if (left.length !== right.length) return false;
  return timingSafeEqual(left, right);
}
