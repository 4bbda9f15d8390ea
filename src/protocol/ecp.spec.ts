import { describe, expect, it } from 'vitest';
import vectors from '../../test/fixtures/vectors/primitives.json';
import { fromHex, toHex } from './bytes.js';
import {
  appendCrcA,
  crcA,
  decodeCarTci,
  ECP_SUBTYPE,
  encodeCarTci,
  encodeEcpFrame,
  parseEcpFrame,
  READER_LOCATION,
} from './ecp.js';
import { ProtocolError } from './errors.js';

describe('CRC_A (ISO/IEC 14443-3) over ECP frames', () => {
  for (const v of vectors.ecpCrcA) {
    it(`reproduces ${v.crc} for ${v.note}`, () => {
      const crc = crcA(fromHex(v.frame));
      expect(toHex(Buffer.from([crc & 0xff, crc >> 8]))).toBe(v.crc);
      expect(toHex(appendCrcA(fromHex(v.frame)))).toBe(v.frame + v.crc);
    });
  }
});

describe('ECP frame (§4.1)', () => {
  it('encodes the car pairing prompt vector', () => {
    const frame = {
      presentAutomatically: true,
      noAuthRequired: true,
      subtype: ECP_SUBTYPE.PAIRING_PROMPT,
      tci: encodeCarTci({ manufacturer: 0x000, location: READER_LOCATION.console }),
    };
    expect(toHex(encodeEcpFrame(frame))).toBe(vectors.ecpCrcA[0].frame + vectors.ecpCrcA[0].crc);
  });

  it('parses all three vector frames, including a Home Key frame', () => {
    const [prompt, withId, homeKey] = vectors.ecpCrcA.map((v) => parseEcpFrame(fromHex(v.frame + v.crc)));
    expect(prompt).toEqual({
      presentAutomatically: true,
      noAuthRequired: true,
      subtype: 0x09,
      tci: fromHex('010001'),
    });
    expect(decodeCarTci(prompt.tci)).toEqual({ manufacturer: 0, location: 1 });
    expect(withId.subtype).toBe(ECP_SUBTYPE.WITH_READER_ID);
    expect(withId.readerGroupId).toEqual(fromHex('deadbeefdeadbeef'));
    expect(homeKey.subtype).toBe(0x04);
    expect(homeKey.tci).toEqual(fromHex('021100'));
    expect(homeKey.readerGroupId).toEqual(fromHex('94625fd2c32cf3c2'));
    expect(() => decodeCarTci(homeKey.tci)).toThrow(ProtocolError);
  });

  it('round-trips a car TCI', () => {
    const tci = encodeCarTci({ manufacturer: 0xabc, location: READER_LOCATION.trunk });
    expect(toHex(tci)).toBe('01abc2');
    expect(decodeCarTci(tci)).toEqual({ manufacturer: 0xabc, location: 2 });
  });

  it('rejects a wrong CRC, reserved bits and inconsistent lengths', () => {
    const good = fromHex(vectors.ecpCrcA[1].frame + vectors.ecpCrcA[1].crc);
    const badCrc = Buffer.from(good);
    badCrc[badCrc.length - 1] ^= 0x01;
    expect(() => parseEcpFrame(badCrc)).toThrow(expect.objectContaining({ code: 'bad-crc' }));
    const reserved = fromHex('6a02db0205010001deadbeefdeadbeef');
    expect(() => parseEcpFrame(appendCrcA(reserved))).toThrow(expect.objectContaining({ code: 'malformed' }));
    const shortData = fromHex('6a02c30205010001deadbeefdeadbeef');
    expect(() => parseEcpFrame(appendCrcA(shortData))).toThrow(expect.objectContaining({ code: 'length' }));
    expect(() => parseEcpFrame(fromHex('6a02'))).toThrow(expect.objectContaining({ code: 'truncated' }));
  });
});
