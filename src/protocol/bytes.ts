import { ProtocolError } from './errors.js';

const HEX_PATTERN = /^(?:[0-9a-fA-F]{2})*$/;

/** Views any Uint8Array as a Buffer without copying (parsers hand out views, not copies). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Strict hex decoding: `Buffer.from(hex, 'hex')` silently stops at the first bad digit. */
export function fromHex(hex: string): Buffer {
  if (!HEX_PATTERN.test(hex)) throw new ProtocolError('malformed', 'not an even-length hex string');
  return Buffer.from(hex, 'hex');
}

/** Lower-case hex, the form used by vectors and by the server's `keyId`. */
export function toHex(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('hex');
}

/** Concatenates byte strings (PROTOCOL.md `‖`). */
export function concatBytes(...parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/** Fails with `out-of-range` unless `value` is an integer in [min, max]. */
export function checkInteger(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ProtocolError('out-of-range', `${what} must be an integer in [${min}, ${max}]`);
  }
}

/** Fails with `length` unless `bytes` is exactly `length` long. */
export function checkLength(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) {
    throw new ProtocolError('length', `${what} must be ${length} bytes, got ${bytes.length}`);
  }
}

/** Big-endian unsigned 16-bit encoding. */
export function u16(value: number): Buffer {
  checkInteger(value, 0, 0xffff, 'u16');
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(value, 0);
  return out;
}

/** Big-endian unsigned 64-bit encoding of a safe integer (unix times, counters). */
export function u64(value: number | bigint): Buffer {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new ProtocolError('out-of-range', 'u64 must be a safe integer');
  }
  const big = BigInt(value);
  if (big < 0n || big > 0xffff_ffff_ffff_ffffn) throw new ProtocolError('out-of-range', 'u64 out of range');
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(big, 0);
  return out;
}

/**
 * Cursor over a byte string. Every read is bounds-checked and fails with
 * `ProtocolError('truncated')`; nothing here can raise a RangeError. Returned byte strings are
 * views into the input (no copies).
 */
export class ByteReader {
  private readonly buffer: Buffer;
  private position: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > bytes.length || start > end) {
      throw new ProtocolError('out-of-range', 'reader window outside the buffer');
    }
    this.buffer = asBuffer(bytes);
    this.position = start;
    this.end = end;
  }

  get offset(): number {
    return this.position;
  }

  get remaining(): number {
    return this.end - this.position;
  }

  get atEnd(): boolean {
    return this.position === this.end;
  }

  private need(count: number, what: string): void {
    if (count > this.end - this.position) {
      throw new ProtocolError('truncated', `${what}: need ${count} bytes, ${this.end - this.position} left`);
    }
  }

  peekU8(what = 'byte'): number {
    this.need(1, what);
    return this.buffer[this.position];
  }

  u8(what = 'byte'): number {
    this.need(1, what);
    return this.buffer[this.position++];
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const value = this.buffer.readUInt16BE(this.position);
    this.position += 2;
    return value;
  }

  u64(what = 'u64'): bigint {
    this.need(8, what);
    const value = this.buffer.readBigUInt64BE(this.position);
    this.position += 8;
    return value;
  }

  bytes(count: number, what = 'bytes'): Buffer {
    if (!Number.isInteger(count) || count < 0) throw new ProtocolError('malformed', `${what}: bad length`);
    this.need(count, what);
    const view = this.buffer.subarray(this.position, this.position + count);
    this.position += count;
    return view;
  }

  rest(): Buffer {
    return this.bytes(this.end - this.position);
  }

  /** Parsers call this last so trailing garbage is rejected rather than ignored. */
  expectEnd(what = 'input'): void {
    if (this.position !== this.end) {
      throw new ProtocolError('length', `${what}: ${this.end - this.position} trailing bytes`);
    }
  }
}
