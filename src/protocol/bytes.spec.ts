import { describe, expect, it } from 'vitest';
import { ByteReader, fromHex, toHex, u16, u64 } from './bytes.js';
import { ProtocolError } from './errors.js';

describe('bytes', () => {
  it('hex is strict', () => {
    expect(toHex(fromHex('00aAfF'))).toBe('00aaff');
    for (const bad of ['0', 'zz', '0g', ' 00', '00 ']) expect(() => fromHex(bad), bad).toThrow(ProtocolError);
  });

  it('integers are range-checked', () => {
    expect(toHex(u16(0x1234))).toBe('1234');
    expect(toHex(u64(1_700_000_000))).toBe('000000006553f100');
    expect(() => u16(0x10000)).toThrow(ProtocolError);
    expect(() => u64(-1)).toThrow(ProtocolError);
    expect(() => u64(1.5)).toThrow(ProtocolError);
  });

  it('ByteReader stays inside its window and reports truncation as ProtocolError', () => {
    const backing = fromHex('ff0102030405ff');
    const reader = new ByteReader(backing, 1, 6);
    expect(reader.u8()).toBe(1);
    expect(reader.u16()).toBe(0x0203);
    expect(reader.remaining).toBe(2);
    expect(() => reader.bytes(3)).toThrow(expect.objectContaining({ code: 'truncated' }));
    expect(() => reader.u64()).toThrow(expect.objectContaining({ code: 'truncated' }));
    expect(() => reader.expectEnd()).toThrow(expect.objectContaining({ code: 'length' }));
    expect(reader.rest()).toEqual(fromHex('0405'));
    expect(() => reader.u8()).toThrow(expect.objectContaining({ code: 'truncated' }));
    expect(() => new ByteReader(backing, 0, 8)).toThrow(ProtocolError);
    expect(() => new ByteReader(backing).bytes(-1)).toThrow(ProtocolError);
  });
});
