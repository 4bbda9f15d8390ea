import fc from 'fast-check';
import { CompactSign, compactVerify } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fuzzRuns, outcome } from '../../../test/support/property-testing.js';
import { signCompactJws, verifyCompactJws } from './compact-jws.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const payload = Buffer.from(JSON.stringify({ v: 1, seq: 7, cmd: 'SET_STATE', keyId: '0011223344556677' }));

describe('compact JWS (ES256, node:crypto)', () => {
  it('is read by jose, header and payload intact', async () => {
    const jws = signCompactJws(payload, privateKey, { typ: 'dks-command+jws', kid: 'k1' });
    const verified = await compactVerify(jws, publicKey, { algorithms: ['ES256'] });
    expect(verified.protectedHeader).toEqual({ alg: 'ES256', typ: 'dks-command+jws', kid: 'k1' });
    expect(Buffer.from(verified.payload)).toEqual(payload);
  });

  it('reads what jose signs', async () => {
    const jws = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', typ: 'x' }).sign(privateKey);
    const verified = verifyCompactJws(jws, publicKey);
    expect(verified.header).toEqual({ alg: 'ES256', typ: 'x' });
    expect(verified.payload).toEqual(payload);
  });

  it('refuses another key, another algorithm, extensions and broken encodings', () => {
    const jws = signCompactJws(payload, privateKey);
    expect(outcome(() => verifyCompactJws(jws, other.publicKey))).toEqual({ error: 'bad-signature' });
    const [header, body, signature] = jws.split('.');
    const swapped = Buffer.from(JSON.stringify({ v: 1, seq: 8 })).toString('base64url');
    expect(outcome(() => verifyCompactJws(`${header}.${swapped}.${signature}`, publicKey))).toEqual({
      error: 'bad-signature',
    });
    const hs256 = Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url');
    expect(outcome(() => verifyCompactJws(`${hs256}.${body}.${signature}`, publicKey))).toEqual({
      error: 'unsupported',
    });
    const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    expect(outcome(() => verifyCompactJws(`${none}.${body}.`, publicKey))).toEqual({ error: 'unsupported' });
    const critHeader = Buffer.from(JSON.stringify({ alg: 'ES256', crit: ['b64'], b64: false })).toString('base64url');
    expect(outcome(() => verifyCompactJws(`${critHeader}.${body}.${signature}`, publicKey))).toEqual({
      error: 'unsupported',
    });
    for (const broken of [
      '',
      'a.b',
      'a.b.c.d',
      `${header}.${body}`,
      `${header}.${body}.${signature}=`,
      `${header}.${body}.${signature.slice(0, -2)}`,
      `e30.${body}.${signature}`,
      `W10.${body}.${signature}`,
      `bnVsbA.${body}.${signature}`,
      `!!.${body}.${signature}`,
    ]) {
      expect(outcome(() => verifyCompactJws(broken, publicKey))).toMatchObject({ error: expect.any(String) });
    }
  });

  it('never accepts a mutated JWS and never throws anything but ProtocolError (fuzzed)', () => {
    const jws = signCompactJws(payload, privateKey, { typ: 'x' });
    fc.assert(
      fc.property(fc.nat(jws.length - 1), fc.string({ minLength: 1, maxLength: 3 }), (at, insert) => {
        const mutated = jws.slice(0, at) + insert + jws.slice(at + 1);
        const result = outcome(() => verifyCompactJws(mutated, publicKey));
        // A mutation that leaves the decoded bytes unchanged (base64url's spare low bits) may verify.
        if ('ok' in result) {
          const verified = result.ok as { payload: Buffer };
          expect(verified.payload).toEqual(payload);
        }
      }),
      { numRuns: fuzzRuns(2_000, 10) },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        expect(outcome(() => verifyCompactJws(text, publicKey))).toMatchObject({ error: expect.any(String) });
      }),
      { numRuns: fuzzRuns(2_000, 10) },
    );
  });
});
