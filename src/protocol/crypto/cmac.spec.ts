import { describe, expect, it } from 'vitest';
import vectors from '../../../test/fixtures/vectors/primitives.json';
import { aesCmac } from './cmac.js';

describe('aesCmac (RFC 4493)', () => {
  const key = Buffer.from(vectors.aesCmac.key, 'hex');
  const message = Buffer.from(vectors.aesCmac.message, 'hex');
  for (const c of vectors.aesCmac.cases) {
    it(`reproduces the tag for a ${c.len}-byte message`, () => {
      expect(aesCmac(key, message.subarray(0, c.len)).toString('hex')).toBe(c.mac);
    });
  }
});
