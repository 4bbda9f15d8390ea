import { randomBytes, randomInt, scrypt } from 'node:crypto';
import { ProtocolError } from './errors.js';
import { computeL, encodeScalar, P256_ORDER } from './spake2plus-group.js';

/** One-time pairing password: 8 decimal digits **[stand-in]** (PROTOCOL.md §3.1). */
export const PAIRING_PASSWORD_DIGITS = 8;
export const PAIRING_SALT_LENGTH = 16;
/** scrypt output split into w0s‖w1s, 40 bytes each (PROTOCOL.md §3.1 step 3). */
export const SCRYPT_OUTPUT_LENGTH = 80;
/** Production cost (PROTOCOL.md §3.1); tests may use N = 4096. */
export const PAIRING_SCRYPT_COST: ScryptCost = { N: 32768, r: 8, p: 1 };
/** Upper bound on scrypt memory (128·N·r), so a hostile SPAKE2+ REQUEST cannot exhaust the device. */
export const MAX_SCRYPT_MEMORY_BYTES = 128 * 1024 * 1024;
const MAX_SCRYPT_PARALLELISM = 16;

export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

/** What the prover (device) holds after entering the password. */
export interface ProverSecrets {
  w0: Buffer;
  w1: Buffer;
}

/** What the verifier (car) holds: never w1 (RFC 9383 §3.2). */
export interface VerifierRecord {
  w0: Buffer;
  L: Buffer;
}

export type PasswordVerifier = ProverSecrets & VerifierRecord;

/** 8 digits, uniform: `randomInt` rejects out-of-range draws, so no modulo bias. */
export function generatePairingPassword(draw: (max: number) => number = (max) => randomInt(max)): string {
  const space = 10 ** PAIRING_PASSWORD_DIGITS;
  const value = draw(space);
  if (!Number.isSafeInteger(value) || value < 0 || value >= space) throw new RangeError('draw out of range');
  return value.toString().padStart(PAIRING_PASSWORD_DIGITS, '0');
}

export function generatePairingSalt(): Buffer {
  return randomBytes(PAIRING_SALT_LENGTH);
}

function assertScryptCost({ N, r, p }: ScryptCost): void {
  const integers = Number.isSafeInteger(N) && Number.isSafeInteger(r) && Number.isSafeInteger(p);
  if (!integers || N < 2 || (N & (N - 1)) !== 0 || r < 1 || p < 1) {
    throw new ProtocolError('malformed', 'scrypt cost must be N a power of two ≥ 2, r ≥ 1, p ≥ 1');
  }
  if (128 * N * r > MAX_SCRYPT_MEMORY_BYTES || p > MAX_SCRYPT_PARALLELISM) {
    throw new ProtocolError('unsupported', 'scrypt cost exceeds the supported maximum');
  }
}

/** w = (z mod (n−1)) + 1, which lands in [1, n−1] (PROTOCOL.md §3.1 step 3). */
function scalarFromScryptHalf(half: Buffer): Buffer {
  return encodeScalar((BigInt(`0x${half.toString('hex')}`) % (P256_ORDER - 1n)) + 1n);
}

/** w0 = (z[0:40] mod (n−1)) + 1, w1 likewise from z[40:80], L = w1·G (PROTOCOL.md §3.1). */
export function verifierFromScryptOutput(z: Uint8Array): PasswordVerifier {
  if (z.length !== SCRYPT_OUTPUT_LENGTH) {
    throw new ProtocolError('length', `scrypt output must be ${SCRYPT_OUTPUT_LENGTH} bytes, got ${z.length}`);
  }
  const bytes = Buffer.from(z);
  const w0 = scalarFromScryptHalf(bytes.subarray(0, 40));
  const w1 = scalarFromScryptHalf(bytes.subarray(40, 80));
  return { w0, w1, L: computeL(w1) };
}

/** z = scrypt(password, salt, N, r, p, 80); off the event loop (≈ 32 MiB and ~0.1 s at production cost). */
export async function deriveVerifierFromPassword(
  password: string | Uint8Array,
  salt: Uint8Array,
  cost: ScryptCost,
): Promise<PasswordVerifier> {
  assertScryptCost(cost);
  const { N, r, p } = cost;
  const maxmem = 2 * 128 * N * r + 128 * r * p;
  const z = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, SCRYPT_OUTPUT_LENGTH, { N, r, p, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
  return verifierFromScryptOutput(z);
}
