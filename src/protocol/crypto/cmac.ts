import { createCipheriv } from 'node:crypto';

const BLOCK = 16;
const RB = 0x87;

function shiftLeft(block: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    out[i] = ((block[i] << 1) | (i + 1 < BLOCK ? block[i + 1] >> 7 : 0)) & 0xff;
  }
  return out;
}

function subkey(block: Buffer): Buffer {
  const shifted = shiftLeft(block);
  if (block[0] & 0x80) shifted[BLOCK - 1] ^= RB;
  return shifted;
}

/** AES-CMAC (RFC 4493) with a 128-bit key; returns the full 16-byte tag. */
export function aesCmac(key: Uint8Array, message: Uint8Array): Buffer {
  if (key.length !== 16) throw new TypeError('AES-CMAC key must be 16 bytes');
  const cipher = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK));
  cipher.setAutoPadding(false);
  const l = cipher.update(Buffer.alloc(BLOCK));
  const k1 = subkey(l);
  const k2 = subkey(k1);

  const blocks = message.length === 0 ? 1 : Math.ceil(message.length / BLOCK);
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const last = Buffer.alloc(BLOCK);
  const tailStart = (blocks - 1) * BLOCK;
  if (complete) {
    for (let i = 0; i < BLOCK; i++) last[i] = message[tailStart + i] ^ k1[i];
  } else {
    const rest = message.length - tailStart;
    for (let i = 0; i < rest; i++) last[i] = message[tailStart + i];
    last[rest] = 0x80;
    for (let i = 0; i < BLOCK; i++) last[i] ^= k2[i];
  }
  // CBC-MAC over the message: a zero-IV CBC encryption whose last block is the tag.
  const mac = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK));
  mac.setAutoPadding(false);
  let tag = Buffer.alloc(BLOCK);
  if (blocks > 1) {
    const head = mac.update(message.subarray(0, tailStart));
    tag = head.subarray(head.length - BLOCK);
  }
  const x = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i++) x[i] = last[i] ^ tag[i];
  const enc = createCipheriv('aes-128-ecb', key, null);
  enc.setAutoPadding(false);
  return enc.update(x);
}
