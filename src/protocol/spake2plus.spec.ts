import { scryptSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import profileVectors from '../../test/fixtures/vectors/spake2plus-ccc-profile.json';
import rfcVectors from '../../test/fixtures/vectors/spake2plus-rfc9383.json';
import { ProtocolError } from './errors.js';
import {
  computeL,
  computeProverPoints,
  computeProverShare,
  computeVerifierPoints,
  computeVerifierShare,
  confirmationKeysInfo,
  deriveVerifierFromPassword,
  generatePairingPassword,
  generatePairingSalt,
  pairingKeySchedule,
  parseShare,
  randomScalar,
  rfc9383KeySchedule,
  SPAKE2PLUS_P256_M_HEX,
  SPAKE2PLUS_P256_N_HEX,
  Spake2PlusProver,
  Spake2PlusVerifier,
  verifierFromScryptOutput,
  type Spake2PlusSuite,
  type VersionBinding,
} from './spake2plus.js';

const hex = (value: string): Buffer => Buffer.from(value, 'hex');
const ascii = (value: string): Buffer => Buffer.from(value, 'ascii');

function expectProtocolError(run: () => unknown, code: ProtocolError['code']): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code).toBe(code);
}

/** Only ProtocolError may escape an untrusted-input path. */
function onlyProtocolErrors(run: () => unknown): boolean {
  try {
    run();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
  return true;
}

/** P-256 point helpers, for crafting adversarial shares only. */
const Point = p256.Point;
const encode = (point: typeof Point.BASE): Buffer => Buffer.from(point.toBytes(false));
const scalarOf = (bytes: Buffer): bigint => BigInt(`0x${bytes.toString('hex')}`);

describe('SPAKE2+ P-256 (RFC 9383 Appendix C)', () => {
  it('uses the RFC 9383 M and N', () => {
    expect(SPAKE2PLUS_P256_M_HEX).toBe(rfcVectors.M);
    expect(SPAKE2PLUS_P256_N_HEX).toBe(rfcVectors.N);
  });

  const suites = Object.entries(rfcVectors.suites) as [Spake2PlusSuite, (typeof rfcVectors.suites)[Spake2PlusSuite]][];
  for (const [suite, v] of suites) {
    describe(suite, () => {
      const w0 = hex(v.w0);
      const w1 = hex(v.w1);
      const x = hex(v.x);
      const y = hex(v.y);

      it('derives L, X and Y', () => {
        expect(computeL(w1).toString('hex')).toBe(v.L);
        expect(computeProverShare(w0, x).toString('hex')).toBe(v.X);
        expect(computeVerifierShare(w0, y).toString('hex')).toBe(v.Y);
      });

      it('computes the same Z and V on both sides', () => {
        const prover = computeProverPoints(w0, w1, x, hex(v.Y));
        const verifier = computeVerifierPoints(w0, hex(v.L), y, hex(v.X));
        for (const side of [prover, verifier]) {
          expect(side.Z.toString('hex')).toBe(v.Z);
          expect(side.V.toString('hex')).toBe(v.V);
        }
      });

      it('reproduces the transcript, confirmation keys and MACs, and the shared key', () => {
        const keys = rfc9383KeySchedule(suite, {
          context: ascii(v.context),
          idProver: ascii(v.idProver),
          idVerifier: ascii(v.idVerifier),
          X: hex(v.X),
          Y: hex(v.Y),
          Z: hex(v.Z),
          V: hex(v.V),
          w0,
        });
        // The RFC prints TT for the first suite only; K_main = SHA-256(TT) pins it for the second.
        if ('TT' in v) expect(keys.TT.toString('hex')).toBe(v.TT);
        expect(keys.kMain.toString('hex')).toBe(v.K_main);
        expect(keys.kConfirmP.toString('hex')).toBe(v.K_confirmP);
        expect(keys.kConfirmV.toString('hex')).toBe(v.K_confirmV);
        expect(keys.confirmP.toString('hex')).toBe(v.confirmP);
        expect(keys.confirmV.toString('hex')).toBe(v.confirmV);
        expect(keys.kShared.toString('hex')).toBe(v.K_shared);
      });
    });
  }
});

describe('owner-pairing profile (PROTOCOL.md §3.3)', () => {
  const v = profileVectors.pairingVector;
  // The vector binds 5B = 0101 and 5C = 0101 0100 (see confirmationInfo_hex), not §3.2's defaults.
  const versions = { selectedVersion: hex('0101'), supportedVersions: hex('01010100') };
  const w0 = hex(v.w0);
  const w1 = hex(v.w1);

  it('derives w0, w1 and L from the password with scrypt N=32768', async () => {
    const derived = await deriveVerifierFromPassword(v.password_ascii, ascii(v.salt_ascii), v.scrypt);
    expect(derived.w0.toString('hex')).toBe(v.w0);
    expect(derived.w1.toString('hex')).toBe(v.w1);
    expect(derived.L.toString('hex')).toBe(v.L);
  });

  it('builds the confirmation info from the selected version and the version list', () => {
    expect(confirmationKeysInfo(versions).toString('hex')).toBe(v.confirmationInfo_hex);
  });

  it('reproduces X, Y, Z, V, K, K1, K2, both evidences and the system keys', () => {
    expect(computeProverShare(w0, hex(v.x)).toString('hex')).toBe(v.X);
    expect(computeVerifierShare(w0, hex(v.y)).toString('hex')).toBe(v.Y);
    const prover = computeProverPoints(w0, w1, hex(v.x), hex(v.Y));
    const verifier = computeVerifierPoints(w0, hex(v.L), hex(v.y), hex(v.X));
    for (const side of [prover, verifier]) {
      expect(side.Z.toString('hex')).toBe(v.Z);
      expect(side.V.toString('hex')).toBe(v.V);
    }
    const keys = pairingKeySchedule({ ...versions, X: hex(v.X), Y: hex(v.Y), Z: hex(v.Z), V: hex(v.V), w0 });
    expect(keys.K.toString('hex')).toBe(v.K);
    expect(keys.confirmationInfo.toString('hex')).toBe(v.confirmationInfo_hex);
    expect(keys.K1.toString('hex')).toBe(v.K1);
    expect(keys.K2.toString('hex')).toBe(v.K2);
    expect(keys.M1.toString('hex')).toBe(v.M1_vehicle_evidence);
    expect(keys.M2.toString('hex')).toBe(v.M2_device_evidence);
    expect(keys.systemKeys.Kenc.toString('hex')).toBe(v.systemKeys.Kenc);
    expect(keys.systemKeys.Kmac.toString('hex')).toBe(v.systemKeys.Kmac);
    expect(keys.systemKeys.Krmac.toString('hex')).toBe(v.systemKeys.Krmac);
    expect(keys.systemKeys.longTermSharedSecret.toString('hex')).toBe(v.systemKeys.longTermSharedSecret);
  });

  it('runs the vector through the prover and verifier classes', () => {
    const prover = new Spake2PlusProver({ w0, w1 }, versions);
    const verifier = new Spake2PlusVerifier({ w0, L: hex(v.L) }, versions);
    const X = prover.start(hex(v.x));
    expect(X.toString('hex')).toBe(v.X);
    const { Y, M1 } = verifier.respond(X, hex(v.y));
    expect(Y.toString('hex')).toBe(v.Y);
    expect(M1.toString('hex')).toBe(v.M1_vehicle_evidence);
    const { M2, systemKeys } = prover.finish(Y, M1);
    expect(M2.toString('hex')).toBe(v.M2_device_evidence);
    const carKeys = verifier.confirm(M2);
    for (const keys of [systemKeys, carKeys]) {
      expect(keys.Kenc.toString('hex')).toBe(v.systemKeys.Kenc);
      expect(keys.Kmac.toString('hex')).toBe(v.systemKeys.Kmac);
      expect(keys.Krmac.toString('hex')).toBe(v.systemKeys.Krmac);
      expect(keys.longTermSharedSecret.toString('hex')).toBe(v.systemKeys.longTermSharedSecret);
    }
  });

  describe('low-cost verifier vector (scrypt N=4096)', () => {
    const low = profileVectors.lowCostVerifierVector;

    it('has the scrypt output the vector states', () => {
      const { N, r, p, dkLen } = low.scrypt;
      const z = scryptSync(low.password_ascii, hex(low.salt_hex), dkLen, { N, r, p });
      expect(z.toString('hex')).toBe(low.z);
    });

    it('maps z to w0, w1 and L', () => {
      const derived = verifierFromScryptOutput(hex(low.z));
      expect(derived.w0.toString('hex')).toBe(low.w0);
      expect(derived.w1.toString('hex')).toBe(low.w1);
      expect(derived.L.toString('hex')).toBe(low.L);
    });

    it('derives w0, w1 and L from the password', async () => {
      const derived = await deriveVerifierFromPassword(low.password_ascii, hex(low.salt_hex), low.scrypt);
      expect(derived.w0.toString('hex')).toBe(low.w0);
      expect(derived.w1.toString('hex')).toBe(low.w1);
      expect(derived.L.toString('hex')).toBe(low.L);
    });
  });
});

describe('Spake2PlusProver / Spake2PlusVerifier', () => {
  const versions: VersionBinding = { selectedVersion: hex('0100'), supportedVersions: hex('02000100') };
  const low = profileVectors.lowCostVerifierVector;
  const lowCost = { N: 4096, r: 8, p: 1 };

  function pair(proverSecrets: { w0: Buffer; w1: Buffer }, record: { w0: Buffer; L: Buffer }) {
    return {
      prover: new Spake2PlusProver(proverSecrets, versions),
      verifier: new Spake2PlusVerifier(record, versions),
    };
  }

  it('agrees on the system keys for random secrets and ephemerals', () => {
    const scalar = fc
      .bigInt({ min: 1n, max: Point.Fn.ORDER - 1n })
      .map((value) => Buffer.from(value.toString(16).padStart(64, '0'), 'hex'));
    fc.assert(
      fc.property(scalar, scalar, scalar, scalar, (w0, w1, x, y) => {
        const { prover, verifier } = pair({ w0, w1 }, { w0, L: computeL(w1) });
        const { Y, M1 } = verifier.respond(prover.start(x), y);
        const { M2, systemKeys } = prover.finish(Y, M1);
        expect(verifier.confirm(M2)).toEqual(systemKeys);
      }),
      { numRuns: 25 },
    );
  });

  it('draws fresh ephemerals by default', () => {
    const w0 = randomScalar();
    const w1 = randomScalar();
    const first = new Spake2PlusProver({ w0, w1 }, versions).start();
    const second = new Spake2PlusProver({ w0, w1 }, versions).start();
    expect(first.equals(second)).toBe(false);
  });

  it('pairs end to end from a generated password', async () => {
    const password = generatePairingPassword();
    const salt = generatePairingSalt();
    const server = await deriveVerifierFromPassword(password, salt, lowCost);
    const device = await deriveVerifierFromPassword(password, salt, lowCost);
    const { prover, verifier } = pair(device, { w0: server.w0, L: server.L });
    const { Y, M1 } = verifier.respond(prover.start());
    const { M2, systemKeys } = prover.finish(Y, M1);
    expect(verifier.confirm(M2)).toEqual(systemKeys);
  });

  it('rejects a wrong password with an evidence mismatch', async () => {
    const salt = hex(low.salt_hex);
    const car = await deriveVerifierFromPassword(low.password_ascii, salt, lowCost);
    const device = await deriveVerifierFromPassword('12345679', salt, lowCost);
    const { prover, verifier } = pair(device, car);
    const { Y, M1 } = verifier.respond(prover.start());
    expectProtocolError(() => prover.finish(Y, M1), 'bad-mac');
    // The car never sees a valid M2 either: a guess at it fails.
    expectProtocolError(() => verifier.confirm(Buffer.alloc(16)), 'bad-mac');
  });

  it('rejects a tampered M1 or M2 and ends the session', () => {
    const w0 = randomScalar();
    const w1 = randomScalar();
    const record = { w0, L: computeL(w1) };
    let { prover, verifier } = pair({ w0, w1 }, record);
    let reply = verifier.respond(prover.start());
    const forgedM1 = Buffer.from(reply.M1);
    forgedM1[15] ^= 1;
    expectProtocolError(() => prover.finish(reply.Y, forgedM1), 'bad-mac');
    expectProtocolError(() => prover.finish(reply.Y, reply.M1), 'bad-state');

    ({ prover, verifier } = pair({ w0, w1 }, record));
    reply = verifier.respond(prover.start());
    const { M2 } = prover.finish(reply.Y, reply.M1);
    const forgedM2 = Buffer.from(M2);
    forgedM2[0] ^= 0x80;
    expectProtocolError(() => verifier.confirm(forgedM2), 'bad-mac');
    expectProtocolError(() => verifier.confirm(M2), 'bad-state');
  });

  it('binds the negotiated versions: a downgrade breaks the evidences', () => {
    const w0 = randomScalar();
    const w1 = randomScalar();
    const prover = new Spake2PlusProver({ w0, w1 }, versions);
    const verifier = new Spake2PlusVerifier({ w0, L: computeL(w1) }, { ...versions, selectedVersion: hex('0200') });
    const { Y, M1 } = verifier.respond(prover.start());
    expectProtocolError(() => prover.finish(Y, M1), 'bad-mac');
  });

  it('enforces the message order', () => {
    const w0 = randomScalar();
    const w1 = randomScalar();
    const { prover, verifier } = pair({ w0, w1 }, { w0, L: computeL(w1) });
    expectProtocolError(() => prover.finish(Buffer.alloc(65), Buffer.alloc(16)), 'bad-state');
    expectProtocolError(() => verifier.confirm(Buffer.alloc(16)), 'bad-state');
    const X = prover.start();
    expectProtocolError(() => prover.start(), 'bad-state');
    verifier.respond(X);
    expectProtocolError(() => verifier.respond(X), 'bad-state');
  });

  it('rejects out-of-range scalars and malformed version bindings', () => {
    const n = Point.Fn.ORDER;
    const order = Buffer.from(n.toString(16), 'hex');
    const w1 = randomScalar();
    expectProtocolError(() => new Spake2PlusProver({ w0: Buffer.alloc(32), w1 }, versions), 'malformed');
    expectProtocolError(() => new Spake2PlusProver({ w0: order, w1 }, versions), 'malformed');
    expectProtocolError(() => new Spake2PlusProver({ w0: Buffer.alloc(31, 1), w1 }, versions), 'length');
    const prover = new Spake2PlusProver({ w0: randomScalar(), w1 }, versions);
    expectProtocolError(() => prover.start(order), 'malformed');
    expectProtocolError(
      () => new Spake2PlusProver({ w0: w1, w1 }, { ...versions, selectedVersion: hex('01') }),
      'length',
    );
    expectProtocolError(
      () => new Spake2PlusProver({ w0: w1, w1 }, { ...versions, supportedVersions: hex('010203') }),
      'length',
    );
  });
});

describe('share validation', () => {
  const v = profileVectors.pairingVector;
  const w0 = hex(v.w0);
  const versions: VersionBinding = { selectedVersion: hex('0100'), supportedVersions: hex('0100') };
  const validX = hex(v.X);

  it('accepts a valid share and returns a copy', () => {
    const parsed = parseShare(validX);
    expect(parsed.equals(validX)).toBe(true);
    expect(parsed).not.toBe(validX);
  });

  it.each([
    [
      'a point off the curve',
      () => Buffer.concat([validX.subarray(0, 64), Buffer.from([validX[64] ^ 1])]),
      'bad-point',
    ],
    ['a compressed prefix on 65 bytes', () => Buffer.concat([Buffer.from([0x02]), validX.subarray(1)]), 'bad-point'],
    ['an x coordinate ≥ p', () => Buffer.concat([Buffer.from([0x04]), Buffer.alloc(64, 0xff)]), 'bad-point'],
    ['65 zero bytes', () => Buffer.alloc(65), 'bad-point'],
    ['the SEC1 identity octet', () => Buffer.from([0x00]), 'length'],
    ['a compressed point', () => hex(SPAKE2PLUS_P256_M_HEX), 'length'],
    ['an empty share', () => Buffer.alloc(0), 'length'],
  ] as const)('rejects %s', (_name, share, code) => {
    expectProtocolError(() => parseShare(share()), code);
    const verifier = new Spake2PlusVerifier({ w0, L: hex(v.L) }, versions);
    expectProtocolError(() => verifier.respond(share()), code);
  });

  it('rejects X = w0·M, whose unblinded point is the identity', () => {
    const X = encode(Point.fromHex(SPAKE2PLUS_P256_M_HEX).multiply(scalarOf(w0)));
    const verifier = new Spake2PlusVerifier({ w0, L: hex(v.L) }, versions);
    expectProtocolError(() => verifier.respond(X), 'bad-point');
  });

  it('rejects Y = w0·N, whose unblinded point is the identity', () => {
    const Y = encode(Point.fromHex(SPAKE2PLUS_P256_N_HEX).multiply(scalarOf(w0)));
    const prover = new Spake2PlusProver({ w0, w1: hex(v.w1) }, versions);
    prover.start();
    expectProtocolError(() => prover.finish(Y, Buffer.alloc(16)), 'bad-point');
  });

  it('rejects an invalid L when the verifier is built', () => {
    expectProtocolError(() => new Spake2PlusVerifier({ w0, L: Buffer.alloc(65) }, versions), 'bad-point');
  });

  it('never throws anything but ProtocolError on random 65-byte shares', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 65, maxLength: 65 }), (bytes) =>
        onlyProtocolErrors(() => parseShare(bytes)),
      ),
      { numRuns: 10_000 },
    );
  });

  it('never throws anything but ProtocolError on 04-prefixed or mutated shares', () => {
    const prefixed = fc
      .uint8Array({ minLength: 64, maxLength: 64 })
      .map((tail) => Buffer.concat([Buffer.from([4]), tail]));
    const mutated = fc.tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1, max: 255 })).map(([index, mask]) => {
      const copy = Buffer.from(validX);
      copy[index] ^= mask;
      return copy;
    });
    fc.assert(
      fc.property(fc.oneof(prefixed, mutated), (bytes) => {
        onlyProtocolErrors(() => parseShare(bytes));
        const parsed = (() => {
          try {
            return parseShare(bytes);
          } catch {
            return undefined;
          }
        })();
        // Anything accepted is a genuine curve point.
        if (parsed) expect(() => Point.fromBytes(parsed).assertValidity()).not.toThrow();
        return true;
      }),
      { numRuns: 10_000 },
    );
  });

  it('never throws anything but ProtocolError from the session APIs on arbitrary bytes', () => {
    const w1 = hex(v.w1);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 20 }), (share, evidence) => {
        const verifier = new Spake2PlusVerifier({ w0, L: hex(v.L) }, versions);
        onlyProtocolErrors(() => verifier.respond(share));
        onlyProtocolErrors(() => verifier.confirm(evidence));
        return true;
      }),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 65, maxLength: 65 }),
        fc.uint8Array({ maxLength: 20 }),
        (share, evidence) => {
          const prover = new Spake2PlusProver({ w0, w1 }, versions);
          prover.start();
          return onlyProtocolErrors(() => prover.finish(share, evidence));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('pairing password and salt (PROTOCOL.md §3.1)', () => {
  it('generates 8 decimal digits, keeping leading zeros', () => {
    expect(generatePairingPassword(() => 42)).toBe('00000042');
    expect(generatePairingPassword(() => 99_999_999)).toBe('99999999');
    const samples = Array.from({ length: 500 }, () => generatePairingPassword());
    for (const sample of samples) expect(sample).toMatch(/^\d{8}$/);
    expect(new Set(samples).size).toBeGreaterThan(490);
  });

  it('draws from the full 10^8 range', () => {
    let max = 0;
    generatePairingPassword((bound) => {
      max = bound;
      return 0;
    });
    expect(max).toBe(100_000_000);
  });

  it('generates 16-byte random salts', () => {
    const a = generatePairingSalt();
    expect(a).toHaveLength(16);
    expect(a.equals(generatePairingSalt())).toBe(false);
  });

  it('rejects unusable or excessive scrypt costs', async () => {
    const salt = generatePairingSalt();
    await expect(deriveVerifierFromPassword('12345678', salt, { N: 3000, r: 8, p: 1 })).rejects.toMatchObject({
      code: 'malformed',
    });
    await expect(deriveVerifierFromPassword('12345678', salt, { N: 2 ** 20, r: 8, p: 1 })).rejects.toMatchObject({
      code: 'unsupported',
    });
  });
});
