import { randomBytes } from 'node:crypto';

const DEFAULT_POOL_BYTES = 4096;

/**
 * CSPRNG output drawn in blocks: one `randomBytes` call costs about as much for 4 KiB as for 16
 * bytes, and readers need a fresh 16-byte transaction id per tap (§4.2). Each byte is handed out
 * once; the returned buffers are copies.
 */
export class RandomPool {
  #pool: Buffer = Buffer.alloc(0);
  #offset = 0;

  constructor(private readonly blockSize = DEFAULT_POOL_BYTES) {}

  take(length: number): Buffer {
    if (length > this.blockSize) return randomBytes(length);
    if (this.#offset + length > this.#pool.length) {
      this.#pool = randomBytes(this.blockSize);
      this.#offset = 0;
    }
    const out = Buffer.from(this.#pool.subarray(this.#offset, this.#offset + length));
    this.#pool.fill(0, this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }
}
