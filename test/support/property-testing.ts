import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { ProtocolError } from '../../src/protocol/errors.js';

/**
 * Shared helpers of the protocol property tests: random bytes and mutated valid encodings may
 * only ever raise ProtocolError, and no parser may read past the end of its input view.
 */
export const RUNS = { numRuns: 10_000 } as const;

/**
 * Runs of a fuzzing property. The default keeps `npm test` quick; `DKS_FUZZ_RUNS=100000` is the
 * long mode. A property that costs a whole handshake per run takes `1/costFactor` of it.
 */
export function fuzzRuns(defaultRuns: number, costFactor = 1): number {
  const raw = process.env.DKS_FUZZ_RUNS;
  if (raw === undefined || raw === '') return defaultRuns;
  if (!/^[1-9]\d*$/.test(raw)) throw new Error(`DKS_FUZZ_RUNS="${raw}" is not valid: expected a positive integer`);
  return Math.max(defaultRuns, Math.ceil(Number(raw) / costFactor));
}

/** A test timeout for `runs` runs of about `msPerRun` each, with room for a slow shared machine. */
export function fuzzTimeoutMs(runs: number, msPerRun: number): number {
  return Math.max(30_000, Math.ceil(runs * msPerRun * 4));
}

export type Outcome = { ok: unknown } | { error: string };

export function outcome(run: () => unknown): Outcome {
  try {
    return { ok: run() };
  } catch (error) {
    if (error instanceof ProtocolError) return { error: error.code };
    throw error; // anything but ProtocolError fails the property
  }
}

/**
 * Parses `bytes` twice: as an exact copy and as a view followed by `trailer` in the same
 * backing buffer. Identical outcomes show the parser never looked past the end of its view.
 */
export function parsesWithinBounds(parse: (bytes: Buffer) => unknown, bytes: Uint8Array, trailer: Uint8Array): void {
  const backing = Buffer.concat([bytes, trailer]);
  const view = backing.subarray(0, bytes.length);
  same(
    outcome(() => parse(view)),
    outcome(() => parse(Buffer.from(bytes))),
  );
}

/** Deep equality with a cheap fast path; vitest's diff only when it fails. */
export function same(actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toStrictEqual(expected);
}

export type Edit = readonly ['flip' | 'set' | 'insert' | 'delete' | 'truncate', number, number];

export function applyEdits(bytes: Buffer, edits: readonly Edit[]): Buffer {
  let out = Buffer.from(bytes);
  for (const [kind, position, value] of edits) {
    const at = out.length === 0 ? 0 : position % (out.length + (kind === 'insert' ? 1 : 0));
    if (kind === 'flip' && out.length > 0) out[at] ^= 1 << (value & 7);
    else if (kind === 'set' && out.length > 0) out[at] = value;
    else if (kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from([value]), out.subarray(at)]);
    else if (kind === 'delete' && out.length > 0) out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    else if (kind === 'truncate') out = out.subarray(0, at);
  }
  return out;
}

export const editArb: fc.Arbitrary<Edit> = fc.tuple(
  fc.constantFrom('flip' as const, 'set' as const, 'insert' as const, 'delete' as const, 'truncate' as const),
  fc.nat(),
  fc.integer({ min: 0, max: 255 }),
);

/** Valid encodings with 1–4 random edits. */
export function mutated(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(valid, fc.array(editArb, { minLength: 1, maxLength: 4 }))
    .map(([bytes, edits]) => applyEdits(bytes, edits));
}

/** fast-check 4 records have a null prototype by default; parsers return plain objects. */
export function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

export const bytes = (maxLength = 300): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));
export const fixedBytes = (length: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: length, maxLength: length }).map((u) => Buffer.from(u));
export const byte = fc.integer({ min: 0, max: 255 });
export const trailer = fc.uint8Array({ minLength: 1, maxLength: 8 });
/** Random 65-byte uncompressed-looking point; coordinates kept below p (parsers check syntax only). */
export const pointArb = fixedBytes(64).map((xy) => {
  xy[0] &= 0x7f;
  xy[32] &= 0x7f;
  return Buffer.concat([Buffer.from([0x04]), xy]);
});

/** Robustness property of a parser: half random bytes, half mutated valid encodings (10 000 runs). */
export function fuzzParser(
  name: string,
  parse: (bytes: Buffer) => unknown,
  valid: fc.Arbitrary<Buffer>,
  maxRandom = 300,
) {
  it(`${name}: random bytes and mutated valid encodings raise only ProtocolError and stay in bounds`, () => {
    fc.assert(
      fc.property(fc.oneof(bytes(maxRandom), mutated(valid)), trailer, (input, extra) =>
        parsesWithinBounds(parse, input, extra),
      ),
      RUNS,
    );
  });
}
