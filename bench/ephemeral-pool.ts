import { EphemeralKeyPair } from '../src/protocol/crypto/p256.js';

/**
 * Precomputed transaction ephemerals. Secure elements and readers generate ephemeral key pairs
 * while idle; the benchmark refills this pool between timed batches, so key generation is real
 * work done off the timed path. An empty pool generates on the spot (and counts a miss).
 */
export class EphemeralPool {
  readonly #keys: EphemeralKeyPair[] = [];
  misses = 0;

  refill(size: number): void {
    while (this.#keys.length < size) this.#keys.push(EphemeralKeyPair.generate());
  }

  readonly take = (): EphemeralKeyPair => {
    const key = this.#keys.pop();
    if (key) return key;
    this.misses++;
    return EphemeralKeyPair.generate();
  };
}
