import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';
import {
  decodeTlv,
  decodeTlvs,
  encodeTlvs,
  findTlv,
  isConstructedTag,
  optionalTlv,
  rejectUnknownTags,
  requireTlv,
  TLV,
} from './tlv.js';

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof ProtocolError) return error.code;
    throw error;
  }
  return undefined;
}

describe('BER-TLV', () => {
  it('encodes one- and two-byte tags and the three length forms', () => {
    expect(toHex(TLV(0x5c, fromHex('0200')))).toBe('5c020200');
    expect(toHex(TLV(0xdf01, fromHex('aa')))).toBe('df0101aa');
    expect(toHex(TLV(0x7f50, TLV(0xc0, fromHex('01'))))).toBe('7f5003c00101');
    expect(toHex(TLV(0x4b, Buffer.alloc(127)).subarray(0, 2))).toBe('4b7f');
    expect(toHex(TLV(0x4b, Buffer.alloc(128)).subarray(0, 3))).toBe('4b8180');
    expect(toHex(TLV(0x4b, Buffer.alloc(255)).subarray(0, 3))).toBe('4b81ff');
    expect(toHex(TLV(0x4b, Buffer.alloc(256)).subarray(0, 4))).toBe('4b820100');
    expect(toHex(TLV(0x93, fromHex('415d'), fromHex('9569')))).toBe('9304415d9569');
  });

  it('rejects tags and lengths outside the profile when encoding', () => {
    expect(code(() => TLV(0x1f, Buffer.alloc(0)))).toBe('out-of-range');
    expect(code(() => TLV(0x7f80, Buffer.alloc(0)))).toBe('out-of-range');
    expect(code(() => TLV(0x5c5c, Buffer.alloc(0)))).toBe('out-of-range');
    expect(code(() => TLV(0x5c, Buffer.alloc(0x10000)))).toBe('length');
  });

  it('decodes constructed tags recursively (7F50 of §3.2)', () => {
    const encoded = TLV(
      0x7f50,
      TLV(0xc0, Buffer.alloc(16, 1)),
      TLV(0xc1, fromHex('00008000')),
      TLV(0xc2, fromHex('0008')),
    );
    const [outer] = decodeTlvs(Buffer.concat([encoded, TLV(0xd6, fromHex('0001'))]));
    expect(outer.tag).toBe(0x7f50);
    expect(isConstructedTag(0x7f50)).toBe(true);
    expect(outer.children?.map((c) => c.tag)).toEqual([0xc0, 0xc1, 0xc2]);
    expect(requireTlv(outer.children!, 0xc1, 4)).toEqual(fromHex('00008000'));
    expect(encodeTlvs([outer])).toEqual(encoded);
    expect(decodeTlv(encoded, { recursive: false }).children).toBeUndefined();
  });

  it('keeps primitive values opaque even when they look like TLV', () => {
    const [item] = decodeTlvs(fromHex('8e04c0020102'));
    expect(isConstructedTag(0x8e)).toBe(false);
    expect(item.children).toBeUndefined();
  });

  it('rejects malformed input with ProtocolError codes', () => {
    expect(code(() => decodeTlvs(fromHex('5c03aabb')))).toBe('truncated');
    expect(() => decodeTlvs(fromHex('7f5003aabb'))).toThrow('TLV 7F50 value: need 3 bytes, 2 left');
    expect(code(() => decodeTlvs(fromHex('5c')))).toBe('truncated');
    expect(code(() => decodeTlvs(fromHex('7f')))).toBe('truncated');
    expect(code(() => decodeTlvs(fromHex('5c8105aabbccddee')))).toBe('malformed'); // non-minimal 81
    expect(code(() => decodeTlvs(fromHex('5c820005aabbccddee')))).toBe('malformed'); // non-minimal 82
    expect(code(() => decodeTlvs(fromHex('5c80')))).toBe('unsupported'); // indefinite
    expect(code(() => decodeTlvs(fromHex('5c8300000100')))).toBe('unsupported');
    expect(code(() => decodeTlvs(fromHex('7f818001')))).toBe('unsupported'); // three-byte tag
    expect(code(() => decodeTlvs(fromHex('7f5003c00201')))).toBe('truncated'); // child overruns parent
    expect(code(() => decodeTlv(fromHex('5c00' + '5c00')))).toBe('malformed');
  });

  it('enforces the nesting limit', () => {
    let nested: Buffer = TLV(0x80, fromHex('00'));
    for (let i = 0; i < 9; i++) nested = TLV(0xa0, nested);
    expect(code(() => decodeTlvs(nested))).toBe('depth');
    expect(decodeTlvs(nested, { maxDepth: 10 })).toHaveLength(1);
    expect(code(() => decodeTlvs(TLV(0xba, TLV(0xa0, TLV(0x80, fromHex('00')))), { maxDepth: 2 }))).toBe('depth');
  });

  it('finds, requires and restricts tags', () => {
    const list = decodeTlvs(fromHex('4e0201025c020200'));
    expect(findTlv(list, 0x4e)?.value).toEqual(fromHex('0102'));
    expect(findTlv(list, 0x99)).toBeUndefined();
    expect(optionalTlv(list, 0x99)).toBeUndefined();
    expect(code(() => requireTlv(list, 0x99))).toBe('missing-tag');
    expect(code(() => requireTlv(list, 0x4e, 8))).toBe('length');
    expect(code(() => findTlv(decodeTlvs(fromHex('4e00' + '4e00')), 0x4e))).toBe('malformed');
    expect(code(() => rejectUnknownTags(list, [0x4e]))).toBe('unexpected-tag');
    expect(() => rejectUnknownTags(list, [0x4e, 0x5c])).not.toThrow();
  });
});
