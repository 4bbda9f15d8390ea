import { timingSafeEqual } from 'node:crypto';

/** Constant-time equality for MACs, cryptograms and evidences; unequal lengths compare false. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
