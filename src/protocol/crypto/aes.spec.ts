import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../errors.js';
import { Aes128, aes128CbcDecrypt, aes128CbcEncrypt, aes128EcbEncrypt, padIso9797M2, unpadIso9797M2 } from './aes.js';

const h = (hex: string): Buffer => Buffer.from(hex, 'hex');

describe('AES-128 (NIST SP 800-38A F.1.1 / F.2.1)', () => {
  const key = h('2b7e151628aed2a6abf7158809cf4f3c');
  const plaintext = h('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51');

  it('ECB', () => {
    expect(aes128EcbEncrypt(key, plaintext).toString('hex')).toBe(
      '3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf',
    );
  });

  it('CBC both ways', () => {
    const iv = h('000102030405060708090a0b0c0d0e0f');
    const ciphertext = '7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2';
    expect(aes128CbcEncrypt(key, iv, plaintext).toString('hex')).toBe(ciphertext);
    expect(aes128CbcDecrypt(key, iv, h(ciphertext))).toEqual(plaintext);
  });

  it('a cached instance matches node:crypto CBC across many messages', () => {
    const aes = new Aes128(key);
    for (let i = 0; i < 50; i++) {
      const iv = randomBytes(16);
      const data = randomBytes(16 * (1 + (i % 6)));
      const reference = createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false).update(data);
      expect(aes.encryptCbc(iv, data)).toEqual(reference);
      expect(aes.decryptCbc(iv, reference)).toEqual(data);
    }
  });

  it('refuses partial blocks and wrong key or IV sizes', () => {
    expect(() => aes128EcbEncrypt(key, Buffer.alloc(15))).toThrow(ProtocolError);
    expect(() => new Aes128(Buffer.alloc(24))).toThrow(ProtocolError);
    expect(() => aes128CbcEncrypt(key, Buffer.alloc(8), Buffer.alloc(16))).toThrow(ProtocolError);
  });
});

describe('ISO/IEC 9797-1 padding method 2', () => {
  it('always pads, with 80 then zeros', () => {
    expect(padIso9797M2(h('')).toString('hex')).toBe('80' + '00'.repeat(15));
    expect(padIso9797M2(h('01020304')).toString('hex')).toBe('0102030480' + '00'.repeat(11));
    expect(padIso9797M2(Buffer.alloc(16, 0xaa))).toHaveLength(32);
  });

  it('unpads, and rejects missing or misplaced markers', () => {
    expect(unpadIso9797M2(padIso9797M2(h('008000')))).toEqual(h('008000'));
    expect(() => unpadIso9797M2(Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'malformed' }));
    expect(() => unpadIso9797M2(h(''))).toThrow(ProtocolError);
    // A marker further back than one block is not padding.
    expect(() => unpadIso9797M2(Buffer.concat([h('80'), Buffer.alloc(31)]))).toThrow(ProtocolError);
  });
});
