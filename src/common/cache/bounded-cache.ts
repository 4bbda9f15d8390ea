/**
 * A map of at most `capacity` entries that forgets the least recently used one first. A read
 * moves its entry to the young end (a `Map` iterates in insertion order), so a working set that
 * fits stays cached however many other keys pass through, and one larger than the capacity
 * still hits for its most recent part instead of starting again from empty.
 */
export class BoundedCache<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`cache capacity must be a positive integer, got ${capacity}`);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** The value (which may itself be `undefined`), marked as just used; `undefined` when absent. */
  get(key: K): V | undefined {
    if (!this.#entries.has(key)) return undefined;
    const value = this.#entries.get(key) as V;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.capacity) this.#entries.delete(this.#entries.keys().next().value as K);
    this.#entries.set(key, value);
  }

  /** The cached value, or `create(key)` cached and returned (nothing is cached when it throws). */
  getOrCreate(key: K, create: (key: K) => V): V {
    if (this.#entries.has(key)) return this.get(key) as V;
    const value = create(key);
    this.set(key, value);
    return value;
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  /** Keys from the least to the most recently used. */
  keys(): IterableIterator<K> {
    return this.#entries.keys();
  }
}
