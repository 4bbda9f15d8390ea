import { describe, expect, it } from 'vitest';
import {
  encodeCommandApdu,
  encodeResponseApdu,
  isMoreDataStatus,
  moreDataStatus,
  parseCommandApdu,
  parseResponseApdu,
  segmentResponse,
  SW,
} from './apdu.js';
import { fromHex, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';

const header = { cla: 0x80, ins: 0xca, p1: 0x01, p2: 0x02 };

describe('command APDU (ISO/IEC 7816-4 cases 1–4)', () => {
  const cases: [string, Parameters<typeof encodeCommandApdu>[0], string][] = [
    ['case 1', header, '80ca0102'],
    ['case 2S', { ...header, le: 16 }, '80ca010210'],
    ['case 2S, Le 256', { ...header, le: 256 }, '80ca010200'],
    ['case 3S', { ...header, data: fromHex('aabb') }, '80ca010202aabb'],
    ['case 4S', { ...header, data: fromHex('aabb'), le: 256 }, '80ca010202aabb00'],
    ['case 2E', { ...header, le: 65_536 }, '80ca0102000000'],
    ['case 2E, forced', { ...header, le: 5, extended: true }, '80ca0102000005'],
    ['case 3E', { ...header, data: Buffer.alloc(256, 1) }, '80ca0102000100' + '01'.repeat(256)],
    ['case 4E', { ...header, data: fromHex('aa'), le: 300 }, '80ca0102000001aa012c'],
  ];
  for (const [name, apdu, hex] of cases) {
    it(name, () => {
      expect(toHex(encodeCommandApdu(apdu))).toBe(hex);
      const parsed = parseCommandApdu(fromHex(hex));
      expect(parsed.data).toEqual(apdu.data ?? Buffer.alloc(0));
      expect(parsed.le).toBe(apdu.le);
      expect(toHex(encodeCommandApdu(parsed))).toBe(hex);
    });
  }

  it('rejects inconsistent lengths', () => {
    for (const hex of [
      '80ca01',
      '80ca010203aabb',
      '80ca010201aabbcc',
      '80ca01020000',
      '80ca0102000000aa',
      '80ca01020000',
    ]) {
      expect(() => parseCommandApdu(fromHex(hex)), hex).toThrow(ProtocolError);
    }
    expect(() => encodeCommandApdu({ ...header, cla: 0x100 })).toThrow(ProtocolError);
    expect(() => encodeCommandApdu({ ...header, le: 0 })).toThrow(ProtocolError);
  });
});

describe('response APDU and status words (§3.2)', () => {
  it('data ‖ SW1 SW2', () => {
    expect(toHex(encodeResponseApdu(fromHex('0102'), SW.OK))).toBe('01029000');
    expect(parseResponseApdu(fromHex('6a80'))).toEqual({ data: Buffer.alloc(0), sw: SW.BAD_DATA });
    expect(() => parseResponseApdu(fromHex('90'))).toThrow(ProtocolError);
  });

  it('names every status word of the profile once', () => {
    expect(SW).toEqual({
      OK: 0x9000,
      WRONG_SEQUENCE: 0x6985,
      BAD_DATA: 0x6a80,
      NOT_FOUND: 0x6a88,
      WRONG_LENGTH: 0x6700,
      BAD_INS: 0x6d00,
      BAD_CLA: 0x6e00,
      PAIRING_NOT_READY: 0x9484,
    });
  });

  it('61xx chaining for GET RESPONSE', () => {
    expect(moreDataStatus(0x20)).toBe(0x6120);
    expect(moreDataStatus(300)).toBe(0x6100);
    expect(isMoreDataStatus(0x6100)).toBe(true);
    const chunks = segmentResponse(Buffer.alloc(600, 7));
    expect(chunks.map((c) => [c.data.length, c.sw])).toEqual([
      [256, 0x6100],
      [256, 0x6158],
      [88, 0x9000],
    ]);
    expect(segmentResponse(Buffer.alloc(0))).toEqual([{ data: Buffer.alloc(0), sw: 0x9000 }]);
  });
});
