import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';
import { ProtocolError } from '../errors.js';

export const AES_BLOCK_SIZE = 16;
export const AES128_KEY_LENGTH = 16;

function checkKey(key: Uint8Array): void {
  if (key.length !== AES128_KEY_LENGTH) throw new ProtocolError('length', 'AES-128 key must be 16 bytes');
}

function checkBlocks(data: Uint8Array, what: string): void {
  if (data.length % AES_BLOCK_SIZE !== 0) {
    throw new ProtocolError('length', `${what} must be a multiple of 16 bytes, got ${data.length}`);
  }
}

/**
 * AES-128 with the key schedule expanded once. ECB contexts carry no state between blocks, so
 * one OpenSSL context per direction serves every later call; CBC is built on top of it. This
 * avoids a `createCipheriv` per message on the secure-channel hot path (§4.5).
 */
export class Aes128 {
  private readonly key: Buffer;
  private readonly encryptor: Cipher;
  private decryptor: Decipher | undefined;

  constructor(key: Uint8Array) {
    checkKey(key);
    this.key = Buffer.from(key);
    this.encryptor = createCipheriv('aes-128-ecb', this.key, null).setAutoPadding(false);
  }

  /** ECB over whole blocks (no padding). */
  encryptEcb(data: Uint8Array): Buffer {
    checkBlocks(data, 'ECB input');
    return this.encryptor.update(data);
  }

  decryptEcb(data: Uint8Array): Buffer {
    checkBlocks(data, 'ECB input');
    this.decryptor ??= createDecipheriv('aes-128-ecb', this.key, null).setAutoPadding(false);
    return this.decryptor.update(data);
  }

  /** CBC over whole blocks (no padding); callers pad with ISO/IEC 9797-1 method 2 first. */
  encryptCbc(iv: Uint8Array, data: Uint8Array): Buffer {
    if (iv.length !== AES_BLOCK_SIZE) throw new ProtocolError('length', 'IV must be 16 bytes');
    checkBlocks(data, 'CBC input');
    const out = Buffer.allocUnsafe(data.length);
    const block = Buffer.allocUnsafe(AES_BLOCK_SIZE);
    let previous: Uint8Array = iv;
    for (let offset = 0; offset < data.length; offset += AES_BLOCK_SIZE) {
      for (let i = 0; i < AES_BLOCK_SIZE; i++) block[i] = data[offset + i] ^ previous[i];
      const encrypted = this.encryptor.update(block);
      out.set(encrypted, offset);
      previous = encrypted;
    }
    return out;
  }

  decryptCbc(iv: Uint8Array, data: Uint8Array): Buffer {
    if (iv.length !== AES_BLOCK_SIZE) throw new ProtocolError('length', 'IV must be 16 bytes');
    // CBC decryption parallelises: one ECB pass, then XOR with the previous ciphertext block.
    const out = this.decryptEcb(data);
    for (let offset = 0; offset < data.length; offset += AES_BLOCK_SIZE) {
      for (let i = 0; i < AES_BLOCK_SIZE; i++) {
        out[offset + i] ^= offset === 0 ? iv[i] : data[offset - AES_BLOCK_SIZE + i];
      }
    }
    return out;
  }
}

/** One-shot AES-128-ECB encryption of whole blocks. */
export function aes128EcbEncrypt(key: Uint8Array, data: Uint8Array): Buffer {
  return new Aes128(key).encryptEcb(data);
}

/** One-shot AES-128-CBC encryption of whole blocks (no automatic padding). */
export function aes128CbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  return new Aes128(key).encryptCbc(iv, data);
}

/** One-shot AES-128-CBC decryption of whole blocks (no automatic unpadding). */
export function aes128CbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  return new Aes128(key).decryptCbc(iv, data);
}

/** ISO/IEC 9797-1 padding method 2: `80` then zeros up to the block boundary (always adds). */
export function padIso9797M2(data: Uint8Array, blockSize = AES_BLOCK_SIZE): Buffer {
  const padded = Buffer.alloc((Math.floor(data.length / blockSize) + 1) * blockSize);
  padded.set(data, 0);
  padded[data.length] = 0x80;
  return padded;
}

/** Removes ISO/IEC 9797-1 method 2 padding; fails with `malformed` when it is absent or wrong. */
export function unpadIso9797M2(data: Uint8Array, blockSize = AES_BLOCK_SIZE): Buffer {
  if (data.length === 0 || data.length % blockSize !== 0) {
    throw new ProtocolError('malformed', 'padded data is not a whole number of blocks');
  }
  let i = data.length - 1;
  const lowest = data.length - blockSize;
  while (i > lowest && data[i] === 0x00) i--;
  if (data[i] !== 0x80) throw new ProtocolError('malformed', 'ISO/IEC 9797-1 method 2 padding not found');
  return Buffer.from(data.buffer, data.byteOffset, i);
}
