import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box.js';

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32).toString('base64'));

  it('opens what it sealed, bound to its associated data', () => {
    const sealed = box.seal(Buffer.from('w0 and L'), 'pairing:1');
    expect(sealed.includes(Buffer.from('w0 and L'))).toBe(false);
    expect(box.open(sealed, 'pairing:1').toString()).toBe('w0 and L');
    expect(() => box.open(sealed, 'pairing:2')).toThrow();
  });

  it('refuses a tampered ciphertext and another key', () => {
    const sealed = box.seal(Buffer.from('secret'), 'a');
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1] ^= 1;
    expect(() => box.open(flipped, 'a')).toThrow();
    expect(() => new SecretBox(randomBytes(32).toString('base64')).open(sealed, 'a')).toThrow();
    expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
  });
});
