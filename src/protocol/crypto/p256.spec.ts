import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../errors.js';
import {
  ecdhSharedX,
  ecdsaSign,
  ecdsaVerify,
  EphemeralKeyPair,
  exportPrivateScalar,
  exportPublicKey,
  importPrivateKey,
  importPublicKey,
  P256KeyPair,
  P256PublicKey,
} from './p256.js';

const ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const h = (hex: string): Buffer => Buffer.from(hex, 'hex');
const toScalar = (value: bigint): Buffer => h(value.toString(16).padStart(64, '0'));

describe('P-256 keys', () => {
  it('imports and exports points and scalars losslessly', () => {
    const pair = P256KeyPair.generate();
    expect(pair.publicPoint).toHaveLength(65);
    expect(exportPublicKey(importPublicKey(pair.publicPoint))).toEqual(pair.publicPoint);
    expect(exportPublicKey(pair.privateKey)).toEqual(pair.publicPoint);
    const scalar = pair.privateScalar();
    expect(exportPrivateScalar(importPrivateKey(scalar))).toEqual(scalar);
    expect(P256KeyPair.fromPrivateScalar(scalar).publicPoint).toEqual(pair.publicPoint);
    expect(P256KeyPair.fromPrivateKey(pair.privateKey).publicPoint).toEqual(pair.publicPoint);
    expect(P256PublicKey.fromKeyObject(pair.publicKey.keyObject).point).toEqual(pair.publicPoint);
  });

  it('rejects invalid points with bad-point', () => {
    const point = P256KeyPair.generate().publicPoint;
    const offCurve = Buffer.from(point);
    offCurve[64] ^= 1;
    const compressed = Buffer.concat([h('02'), point.subarray(1, 33)]);
    const tooBig = Buffer.concat([h('04'), Buffer.alloc(64, 0xff)]);
    for (const bad of [offCurve, compressed, tooBig, Buffer.alloc(65), point.subarray(0, 64)]) {
      expect(() => importPublicKey(bad)).toThrow(expect.objectContaining({ code: 'bad-point' }));
      expect(() => EphemeralKeyPair.generate().sharedSecretX(bad)).toThrow(
        expect.objectContaining({ code: 'bad-point' }),
      );
    }
  });

  it('rejects private scalars outside [1, n-1] with bad-key', () => {
    for (const bad of [Buffer.alloc(32), toScalar(ORDER), toScalar(ORDER + 1n), Buffer.alloc(31, 1)]) {
      expect(() => importPrivateKey(bad)).toThrow(expect.objectContaining({ code: 'bad-key' }));
      expect(() => EphemeralKeyPair.fromPrivateScalar(bad)).toThrow(ProtocolError);
    }
    expect(() => importPrivateKey(toScalar(ORDER - 1n))).not.toThrow();
  });
});

describe('ECDSA with raw r‖s', () => {
  const pair = P256KeyPair.generate();
  const message = Buffer.from('sig_input');

  it('signs and verifies; verifiers accept the high-S twin (§4.3)', () => {
    const signature = ecdsaSign(pair.privateKey, message);
    expect(signature).toHaveLength(64);
    expect(ecdsaVerify(pair.publicKey.keyObject, message, signature)).toBe(true);
    const s = BigInt('0x' + signature.subarray(32).toString('hex'));
    const twin = Buffer.concat([signature.subarray(0, 32), toScalar(ORDER - s)]);
    expect(pair.publicKey.verify(message, twin)).toBe(true);
  });

  it('returns false, never throws, for wrong or malformed signatures', () => {
    const signature = pair.sign(message);
    const flipped = Buffer.from(signature);
    flipped[5] ^= 0x10;
    expect(pair.publicKey.verify(message, flipped)).toBe(false);
    expect(pair.publicKey.verify(Buffer.from('other'), signature)).toBe(false);
    expect(pair.publicKey.verify(message, signature.subarray(0, 63))).toBe(false);
    expect(pair.publicKey.verify(message, Buffer.alloc(64))).toBe(false);
    expect(pair.publicKey.verify(message, Buffer.alloc(64, 0xff))).toBe(false);
  });
});

describe('ECDH', () => {
  it('agrees on the x coordinate across KeyObject and ephemeral implementations', () => {
    const a = P256KeyPair.generate();
    const b = EphemeralKeyPair.generate();
    const x = b.sharedSecretX(a.publicPoint);
    expect(x).toHaveLength(32);
    expect(a.sharedSecretX(b.publicPoint)).toEqual(x);
    expect(ecdhSharedX(a.privateKey, importPublicKey(b.publicPoint))).toEqual(x);
    expect(a.sharedSecretX(P256PublicKey.fromPoint(b.publicPoint))).toEqual(x);
    expect(b.x).toEqual(b.publicPoint.subarray(1, 33));
  });
});
