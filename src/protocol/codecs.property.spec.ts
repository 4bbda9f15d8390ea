import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeCommandApdu,
  encodeResponseApdu,
  parseCommandApdu,
  parseResponseApdu,
  type CommandApduInput,
} from './apdu.js';
import { ByteReader, fromHex } from './bytes.js';
import { padIso9797M2, unpadIso9797M2 } from './crypto/aes.js';
import { importPublicKey } from './crypto/p256.js';
import { appendCrcA, decodeCarTci, encodeEcpFrame, parseEcpFrame, type EcpFrame } from './ecp.js';
import { decodeEntitlements, encodeEntitlements, evaluateEntitlements, type Entitlements } from './entitlements.js';
import { decodeTlvs, encodeTlvs, type Tlv } from './tlv.js';
import type { TransactionCode } from './transaction.js';
import {
  RUNS,
  outcome,
  parsesWithinBounds,
  same,
  mutated,
  record,
  bytes,
  fixedBytes,
  byte,
  trailer,
  pointArb,
  fuzzParser,
} from '../../test/support/property-testing.js';

/**
 * Property tests of the byte-level codecs (bytes, TLV, APDU, ECP, padding, points, entitlements) (STYLE.md:
 * "Property tests for every parser"):
 * random bytes and mutated valid encodings only ever raise ProtocolError, valid values
 * round-trip, and no parser reads past the end of its input view.
 */
// ---- bytes ----------------------------------------------------------------------------------

describe('ByteReader', () => {
  it('never reads outside its window, whatever the sequence of reads', () => {
    const op = fc.oneof(
      fc.constant({ kind: 'u8' as const, n: 1 }),
      fc.constant({ kind: 'u16' as const, n: 2 }),
      fc.constant({ kind: 'u64' as const, n: 8 }),
      fc.integer({ min: -2, max: 40 }).map((n) => ({ kind: 'bytes' as const, n })),
    );
    fc.assert(
      fc.property(bytes(48), fc.nat(), fc.nat(), fc.array(op, { maxLength: 8 }), (input, a, b, ops) => {
        const start = input.length === 0 ? 0 : a % (input.length + 1);
        const end = start + (input.length - start === 0 ? 0 : b % (input.length - start + 1));
        const reader = new ByteReader(input, start, end);
        for (const { kind, n } of ops) {
          const before = reader.offset;
          const result = outcome(() => (kind === 'bytes' ? reader.bytes(n) : reader[kind]()));
          expect(reader.offset).toBeLessThanOrEqual(end);
          if ('ok' in result && Buffer.isBuffer(result.ok)) {
            same(result.ok, input.subarray(before, before + n));
          }
          if ('error' in result) expect(reader.offset).toBe(before);
        }
      }),
      RUNS,
    );
  });

  it('fromHex accepts exactly the even-length hex strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (text) => {
        const result = outcome(() => fromHex(text));
        expect('ok' in result).toBe(/^([0-9a-fA-F]{2})*$/.test(text));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(bytes(40), (input) => {
        same(fromHex(input.toString('hex')), input);
      }),
      RUNS,
    );
  });
});

// ---- TLV --------------------------------------------------------------------------------------

type TlvShape = { tag: number; value: string } | { tag: number; children: TlvShape[] };

const primitiveTag = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).filter((t) => (t & 0x1f) !== 0x1f && (t & 0x20) === 0),
  fc.tuple(fc.constantFrom(0x1f, 0x5f, 0x9f, 0xdf), fc.integer({ min: 0, max: 0x7f })).map(([a, b]) => (a << 8) | b),
);
const constructedTag = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).filter((t) => (t & 0x1f) !== 0x1f && (t & 0x20) !== 0),
  fc.tuple(fc.constantFrom(0x3f, 0x7f, 0xbf, 0xff), fc.integer({ min: 0, max: 0x7f })).map(([a, b]) => (a << 8) | b),
);

const { node: tlvNode } = fc.letrec<{ node: Tlv }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    record({ tag: primitiveTag, value: bytes(300) }),
    record({
      tag: constructedTag,
      value: fc.constant(Buffer.alloc(0)),
      children: fc.array(tie('node'), { maxLength: 3 }),
    }),
  ),
}));
const tlvList = fc.array(tlvNode, { maxLength: 4 });

function shape(list: readonly Tlv[]): TlvShape[] {
  return list.map((item) =>
    item.children
      ? { tag: item.tag, children: shape(item.children) }
      : { tag: item.tag, value: item.value.toString('hex') },
  );
}

describe('BER-TLV', () => {
  it('encode → decode round-trips random trees', () => {
    fc.assert(
      fc.property(tlvList, (list) => {
        const encoded = encodeTlvs(list);
        const decoded = decodeTlvs(encoded);
        same(shape(decoded), shape(list));
        same(encodeTlvs(decoded), encoded);
      }),
      RUNS,
    );
  });

  it('whatever decodes re-encodes to the same bytes (one encoding per object)', () => {
    fc.assert(
      fc.property(mutated(tlvList.map(encodeTlvs)), (input) => {
        const result = outcome(() => decodeTlvs(input));
        if ('ok' in result) same(encodeTlvs(result.ok as Tlv[]), input);
      }),
      RUNS,
    );
  });

  fuzzParser('decodeTlvs', (b) => decodeTlvs(b), tlvList.map(encodeTlvs));
  fuzzParser('decodeTlvs (depth 2)', (b) => decodeTlvs(b, { maxDepth: 2 }), tlvList.map(encodeTlvs));
});

// ---- APDU -------------------------------------------------------------------------------------

const commandArb: fc.Arbitrary<CommandApduInput> = fc
  .record({
    cla: byte,
    ins: byte,
    p1: byte,
    p2: byte,
    data: fc.oneof({ weight: 5, arbitrary: bytes(270) }, { weight: 1, arbitrary: bytes(70_000) }),
    le: fc.option(fc.integer({ min: 1, max: 65_536 }), { nil: undefined }),
    extended: fc.boolean(),
  })
  .map(({ le, ...rest }) => (le === undefined ? rest : { ...rest, le }));
const smallCommandArb = commandArb.filter((c) => (c.data?.length ?? 0) < 300);

describe('APDU', () => {
  it('command encode → parse → encode round-trips', () => {
    fc.assert(
      fc.property(commandArb, (command) => {
        const encoded = encodeCommandApdu(command);
        const parsed = parseCommandApdu(encoded);
        same(parsed.data, Buffer.from(command.data ?? []));
        expect(parsed.le).toBe(command.le);
        same([parsed.cla, parsed.ins, parsed.p1, parsed.p2], [command.cla, command.ins, command.p1, command.p2]);
        same(encodeCommandApdu(parsed), encoded);
      }),
      { numRuns: 10_000 },
    );
  });

  fuzzParser('parseCommandApdu', parseCommandApdu, smallCommandArb.map(encodeCommandApdu));

  it('whatever parses as a command re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(mutated(smallCommandArb.map(encodeCommandApdu)), (input) => {
        const result = outcome(() => parseCommandApdu(input));
        if ('ok' in result) same(encodeCommandApdu(result.ok as CommandApduInput), input);
      }),
      RUNS,
    );
  });

  it('response encode → parse round-trips', () => {
    fc.assert(
      fc.property(bytes(300), fc.integer({ min: 0, max: 0xffff }), (data, sw) => {
        same(parseResponseApdu(encodeResponseApdu(data, sw)), { data, sw });
      }),
      RUNS,
    );
  });

  fuzzParser(
    'parseResponseApdu',
    parseResponseApdu,
    bytes(40).map((d) => encodeResponseApdu(d, 0x9000)),
  );
});

// ---- ECP --------------------------------------------------------------------------------------

const ecpArb: fc.Arbitrary<EcpFrame> = fc
  .record({
    presentAutomatically: fc.boolean(),
    noAuthRequired: fc.boolean(),
    subtype: byte,
    tci: fixedBytes(3),
    readerGroupId: fc.option(fixedBytes(8), { nil: undefined }),
  })
  .map(({ readerGroupId, ...rest }) => (readerGroupId ? { ...rest, readerGroupId } : rest));

describe('ECP frame', () => {
  it('encode → parse round-trips', () => {
    fc.assert(
      fc.property(ecpArb, (frame) => {
        same(parseEcpFrame(encodeEcpFrame(frame)), frame);
      }),
      RUNS,
    );
  });

  fuzzParser('parseEcpFrame', parseEcpFrame, ecpArb.map(encodeEcpFrame), 24);

  it('mutated frames with a recomputed CRC raise only ProtocolError', () => {
    const bodies = ecpArb.map((f) => encodeEcpFrame(f).subarray(0, -2));
    fc.assert(
      fc.property(mutated(bodies), trailer, (body, extra) =>
        parsesWithinBounds(parseEcpFrame, appendCrcA(body), extra),
      ),
      RUNS,
    );
  });

  fuzzParser('decodeCarTci', decodeCarTci, fixedBytes(3), 6);
});

// ---- padding ----------------------------------------------------------------------------------

describe('ISO/IEC 9797-1 method 2', () => {
  it('pad → unpad round-trips', () => {
    fc.assert(
      fc.property(bytes(100), (data) => {
        const padded = padIso9797M2(data);
        expect(padded.length % 16).toBe(0);
        same(unpadIso9797M2(padded), data);
      }),
      RUNS,
    );
  });

  fuzzParser(
    'unpadIso9797M2',
    (b) => unpadIso9797M2(b),
    bytes(64).map((d) => padIso9797M2(d)),
    64,
  );
});

// ---- P-256 import -----------------------------------------------------------------------------

describe('P-256 point import', () => {
  it('random 65-byte strings raise only ProtocolError(bad-point) or import', () => {
    fc.assert(
      fc.property(fc.oneof(pointArb, fixedBytes(65), bytes(70)), (input) => {
        const result = outcome(() => importPublicKey(input));
        if ('error' in result) expect(result.error).toBe('bad-point');
      }),
      RUNS,
    );
  });
});

const transactionCodeArb = fc.constantFrom<TransactionCode>('unlock', 'lock', 'engine-start', 'trunk');

// ---- entitlements -----------------------------------------------------------------------------

const entitlementsArb: fc.Arbitrary<Entitlements> = fc
  .record({
    rights: fc.integer({ min: 0, max: 0x3f }),
    maxSpeedKmh: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
    maxPowerPercent: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    maxVolume: fc.option(byte, { nil: undefined }),
    validity: fc.option(
      fc
        .tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 40 }))
        .map(([a, b]) => ({ notBefore: Math.min(a, b), notAfter: Math.max(a, b) })),
      { nil: undefined },
    ),
    timeOfDay: fc.option(
      record({
        startMinute: fc.integer({ min: 0, max: 1439 }),
        endMinute: fc.integer({ min: 0, max: 1440 }),
        weekdays: fc.integer({ min: 0, max: 0x7f }),
      }),
      { nil: undefined },
    ),
  })
  .map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) as unknown as Entitlements);

describe('entitlements', () => {
  it('encode → decode round-trips', () => {
    fc.assert(
      fc.property(entitlementsArb, (e) => {
        same(decodeEntitlements(encodeEntitlements(e)), e);
      }),
      RUNS,
    );
  });
  fuzzParser('decodeEntitlements', decodeEntitlements, entitlementsArb.map(encodeEntitlements), 60);

  it('evaluation never allows a transaction without its right', () => {
    fc.assert(
      fc.property(
        entitlementsArb,
        transactionCodeArb,
        fc.integer({ min: 0, max: 2 ** 41 }),
        fc.integer({ min: 0, max: 1439 }),
        fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const, 5 as const, 6 as const, 7 as const),
        (e, code, now, minute, weekday) => {
          const decision = evaluateEntitlements(e, code, now, minute, weekday);
          const bit = { unlock: 0x01, lock: 0x01, trunk: 0x02, 'engine-start': 0x04 }[code];
          if (!(e.rights & bit)) same(decision, { allowed: false, reason: 'right-missing' });
          if (decision.allowed && e.validity) {
            expect(now).toBeGreaterThanOrEqual(e.validity.notBefore);
            expect(now).toBeLessThanOrEqual(e.validity.notAfter);
          }
        },
      ),
      RUNS,
    );
  });
});
