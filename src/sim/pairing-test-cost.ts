import type { ScryptCost } from '../protocol/spake2plus-password.js';

/** The scrypt cost tests and demos may use (PROTOCOL.md §3.1: N = 4096); production is N = 32768. */
export const PAIRING_SCRYPT_TEST_COST: ScryptCost = { N: 4096, r: 8, p: 1 };
