import { Aes128, AES_BLOCK_SIZE } from './aes.js';

const RB = 0x87;

function subkey(block: Buffer): Buffer {
  const out = Buffer.allocUnsafe(AES_BLOCK_SIZE);
  for (let i = 0; i < AES_BLOCK_SIZE; i++) {
    out[i] = ((block[i] << 1) | (i + 1 < AES_BLOCK_SIZE ? block[i + 1] >> 7 : 0)) & 0xff;
  }
  if (block[0] & 0x80) out[AES_BLOCK_SIZE - 1] ^= RB;
  return out;
}

/**
 * AES-CMAC (RFC 4493) keyed once: the AES key schedule and the subkeys K1/K2 are computed in the
 * constructor, so each secure-channel MAC (§4.5) costs only the block encryptions.
 */
export class AesCmac {
  private readonly aes: Aes128;
  private readonly k1: Buffer;
  private readonly k2: Buffer;

  constructor(key: Uint8Array) {
    this.aes = new Aes128(key);
    this.k1 = subkey(this.aes.encryptEcb(Buffer.alloc(AES_BLOCK_SIZE)));
    this.k2 = subkey(this.k1);
  }

  /** Full 16-byte tag over the concatenation of `parts` (e.g. MCV ‖ ciphertext). */
  mac(...parts: readonly Uint8Array[]): Buffer {
    const message = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const blocks = message.length === 0 ? 1 : Math.ceil(message.length / AES_BLOCK_SIZE);
    const lastStart = (blocks - 1) * AES_BLOCK_SIZE;

    // CBC-MAC with a zero IV over all blocks but the last.
    let state: Buffer = Buffer.alloc(AES_BLOCK_SIZE);
    for (let offset = 0; offset < lastStart; offset += AES_BLOCK_SIZE) {
      for (let i = 0; i < AES_BLOCK_SIZE; i++) state[i] ^= message[offset + i];
      state = this.aes.encryptEcb(state);
    }
    // Last block: masked with K1 when complete, else padded with 80 00… and masked with K2.
    const complete = message.length > 0 && message.length % AES_BLOCK_SIZE === 0;
    const mask = complete ? this.k1 : this.k2;
    const rest = message.length - lastStart;
    for (let i = 0; i < AES_BLOCK_SIZE; i++) {
      const byte = i < rest ? message[lastStart + i] : i === rest ? 0x80 : 0;
      state[i] ^= byte ^ mask[i];
    }
    return this.aes.encryptEcb(state);
  }
}

/** AES-CMAC (RFC 4493) with a 128-bit key; returns the full 16-byte tag. */
export function aesCmac(key: Uint8Array, message: Uint8Array): Buffer {
  return new AesCmac(key).mac(message);
}
