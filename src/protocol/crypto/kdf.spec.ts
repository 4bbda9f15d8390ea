import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import vectors from '../../../test/fixtures/vectors/primitives.json';
import { ProtocolError } from '../errors.js';
import { hkdfSha256, x963KdfSha256 } from './kdf.js';

const h = (hex: string): Buffer => Buffer.from(hex, 'hex');

describe('hkdfSha256 (RFC 5869 test case 1)', () => {
  it('reproduces the OKM', () => {
    const v = vectors.hkdfSha256;
    expect(hkdfSha256(h(v.ikm), h(v.salt), h(v.info), v.length).toString('hex')).toBe(v.okm);
  });

  it('treats salt none as the empty salt (RFC 5869: HashLen zeros)', () => {
    const ikm = h('0b'.repeat(22));
    expect(hkdfSha256(ikm, undefined, h(''), 42)).toEqual(hkdfSha256(ikm, Buffer.alloc(32), h(''), 42));
  });

  it('agrees with node:crypto hkdfSync on any IKM, salt, info and length', () => {
    const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((array) => Buffer.from(array));
    fc.assert(
      fc.property(
        bytes(80),
        fc.option(bytes(80), { nil: undefined }),
        bytes(1024),
        fc.integer({ min: 1, max: 255 * 32 }),
        (ikm, salt, info, length) => {
          const expected = Buffer.from(hkdfSync('sha256', ikm, salt ?? Buffer.alloc(0), info, length));
          expect(hkdfSha256(ikm, salt, info, length)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects lengths and info strings node:crypto cannot serve', () => {
    expect(() => hkdfSha256(h('00'), undefined, h(''), 0)).toThrow(ProtocolError);
    expect(() => hkdfSha256(h('00'), undefined, h(''), 255 * 32 + 1)).toThrow(ProtocolError);
    expect(() => hkdfSha256(h('00'), undefined, Buffer.alloc(1025), 32)).toThrow(ProtocolError);
  });
});

describe('x963KdfSha256 (NIST CAVP ansx963_2001)', () => {
  for (const [i, v] of vectors.x963KdfSha256.entries()) {
    it(`reproduces case ${i + 1} (${v.length} bytes, sharedInfo ${v.sharedInfo.length / 2} bytes)`, () => {
      expect(x963KdfSha256(h(v.z), h(v.sharedInfo), v.length).toString('hex')).toBe(v.key);
    });
  }

  it('is a prefix-consistent stream', () => {
    const z = h('01'.repeat(32));
    expect(x963KdfSha256(z, h('aa'), 40).subarray(0, 20)).toEqual(x963KdfSha256(z, h('aa'), 20));
  });
});
