import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundedCache } from './bounded-cache.js';

type Operation =
  | { kind: 'get'; key: number }
  | { kind: 'set'; key: number; value: number }
  | { kind: 'getOrCreate'; key: number; value: number }
  | { kind: 'delete'; key: number };

const key = fc.integer({ min: 0, max: 12 });
const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('get' as const), key }),
  fc.record({ kind: fc.constant('set' as const), key, value: fc.integer() }),
  fc.record({ kind: fc.constant('getOrCreate' as const), key, value: fc.integer() }),
  fc.record({ kind: fc.constant('delete' as const), key }),
);

/** The reference: an array of [key, value] from the least to the most recently used. */
class ReferenceLru {
  entries: Array<[number, number]> = [];
  constructor(private readonly capacity: number) {}
  #take(key: number): [number, number] | undefined {
    const index = this.entries.findIndex(([k]) => k === key);
    return index < 0 ? undefined : this.entries.splice(index, 1)[0];
  }
  get(key: number): number | undefined {
    const entry = this.#take(key);
    if (entry) this.entries.push(entry);
    return entry?.[1];
  }
  set(key: number, value: number): void {
    this.#take(key);
    if (this.entries.length >= this.capacity) this.entries.shift();
    this.entries.push([key, value]);
  }
  delete(key: number): boolean {
    return this.#take(key) !== undefined;
  }
}

describe('BoundedCache', () => {
  it('behaves as a least-recently-used map of its capacity under any sequence of operations', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(operation, { maxLength: 200 }), (capacity, operations) => {
        const cache = new BoundedCache<number, number>(capacity);
        const reference = new ReferenceLru(capacity);
        for (const op of operations) {
          switch (op.kind) {
            case 'get':
              expect(cache.get(op.key)).toBe(reference.get(op.key));
              break;
            case 'set':
              cache.set(op.key, op.value);
              reference.set(op.key, op.value);
              break;
            case 'getOrCreate': {
              const expected = reference.get(op.key) ?? op.value;
              if (expected === op.value) reference.set(op.key, op.value);
              expect(cache.getOrCreate(op.key, () => op.value)).toBe(expected);
              break;
            }
            case 'delete':
              expect(cache.delete(op.key)).toBe(reference.delete(op.key));
              break;
          }
          expect(cache.size).toBeLessThanOrEqual(capacity);
          expect([...cache.keys()]).toEqual(reference.entries.map(([k]) => k));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps a recently read entry when a new one pushes the oldest out', () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect([...cache.keys()]).toEqual(['a', 'c']);
    expect(cache.has('b')).toBe(false);
  });

  it('caches undefined values and caches nothing when creating throws', () => {
    const cache = new BoundedCache<string, string | undefined>(4);
    let calls = 0;
    const create = () => {
      calls++;
      return undefined;
    };
    expect(cache.getOrCreate('x', create)).toBeUndefined();
    expect(cache.getOrCreate('x', create)).toBeUndefined();
    expect(calls).toBe(1);
    expect(() =>
      cache.getOrCreate('y', () => {
        throw new Error('no');
      }),
    ).toThrow('no');
    expect(cache.has('y')).toBe(false);
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) expect(() => new BoundedCache(capacity)).toThrow(RangeError);
  });
});
