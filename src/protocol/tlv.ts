import { ByteReader, asBuffer } from './bytes.js';
import { ProtocolError } from './errors.js';

/**
 * BER-TLV as used by PROTOCOL.md: one- or two-byte tags (first byte low five bits all set →
 * a second byte follows, e.g. `7F50`, `DF01`), definite lengths in short form or `81 xx` /
 * `82 xx xx`. Longer tags, indefinite and longer lengths are outside the profile.
 */
export interface Tlv {
  /** One-byte tags are 0x00–0xFF, two-byte tags 0x1F00–0xFF7F (e.g. 0x7f50). */
  readonly tag: number;
  /** The value bytes; a view into the decoded input. */
  readonly value: Buffer;
  /** Decoded contents of a constructed tag (bit 6 of the first tag byte), when decoded recursively. */
  readonly children?: readonly Tlv[];
}

export interface TlvDecodeOptions {
  /** Nesting limit counted from 1 at the top level; deeper input fails with `depth`. */
  readonly maxDepth?: number;
  /** Decode constructed values into `children` (default true). */
  readonly recursive?: boolean;
}

/** Deep enough for every structure in the profile (the deepest, `BA{87}` or `7F50{C0}`, is 2). */
export const DEFAULT_TLV_MAX_DEPTH = 8;
export const MAX_TLV_VALUE_LENGTH = 0xffff;

const CONSTRUCTED_BIT = 0x20;
const TAG_NUMBER_MASK = 0x1f;

/** Tag as 2 or 4 upper-case hex digits, for messages. */
export function tagHex(tag: number): string {
  return tag
    .toString(16)
    .toUpperCase()
    .padStart(tag > 0xff ? 4 : 2, '0');
}

/** Bit 6 of the first tag byte marks a constructed data object (ISO/IEC 7816-4 §5.2.2). */
export function isConstructedTag(tag: number): boolean {
  const first = tag > 0xff ? tag >> 8 : tag;
  return (first & CONSTRUCTED_BIT) !== 0;
}

export function encodeTag(tag: number): Buffer {
  if (Number.isInteger(tag) && tag >= 0 && tag <= 0xff && (tag & TAG_NUMBER_MASK) !== TAG_NUMBER_MASK) {
    return Buffer.from([tag]);
  }
  if (Number.isInteger(tag) && tag > 0xff && tag <= 0xffff) {
    const first = tag >> 8;
    const second = tag & 0xff;
    if ((first & TAG_NUMBER_MASK) === TAG_NUMBER_MASK && second < 0x80) return Buffer.from([first, second]);
  }
  throw new ProtocolError('out-of-range', `tag ${String(tag)} is not a one- or two-byte BER tag`);
}

export function encodeLength(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_TLV_VALUE_LENGTH) {
    throw new ProtocolError('length', `TLV value length ${length} outside 0..65535`);
  }
  if (length < 0x80) return Buffer.from([length]);
  if (length <= 0xff) return Buffer.from([0x81, length]);
  return Buffer.from([0x82, length >> 8, length & 0xff]);
}

/** `TLV(t, v)` of PROTOCOL.md; several value parts are concatenated. */
export function TLV(tag: number, ...valueParts: readonly Uint8Array[]): Buffer {
  const value = valueParts.length === 1 ? valueParts[0] : Buffer.concat(valueParts);
  return Buffer.concat([encodeTag(tag), encodeLength(value.length), value]);
}

/** Encodes a list of data objects; a constructed object with `children` is re-encoded from them. */
export function encodeTlvs(list: readonly Tlv[]): Buffer {
  return Buffer.concat(list.map((item) => TLV(item.tag, item.children ? encodeTlvs(item.children) : item.value)));
}

function readTag(reader: ByteReader): number {
  const first = reader.u8('TLV tag');
  if ((first & TAG_NUMBER_MASK) !== TAG_NUMBER_MASK) return first;
  const second = reader.u8('TLV tag');
  if (second & 0x80) throw new ProtocolError('unsupported', 'TLV tags longer than two bytes are not supported');
  return (first << 8) | second;
}

function readLength(reader: ByteReader): number {
  const first = reader.u8('TLV length');
  if (first < 0x80) return first;
  if (first === 0x81) {
    const length = reader.u8('TLV length');
    // Minimal encodings only, so that every object has exactly one encoding.
    if (length < 0x80) throw new ProtocolError('malformed', 'non-minimal TLV length 81 xx');
    return length;
  }
  if (first === 0x82) {
    const length = reader.u16('TLV length');
    if (length <= 0xff) throw new ProtocolError('malformed', 'non-minimal TLV length 82 xx xx');
    return length;
  }
  throw new ProtocolError('unsupported', `TLV length form ${first.toString(16)} is not supported`);
}

function decodeRange(
  buffer: Buffer,
  start: number,
  end: number,
  depth: number,
  options: Required<TlvDecodeOptions>,
): Tlv[] {
  if (depth > options.maxDepth) throw new ProtocolError('depth', `TLV nesting deeper than ${options.maxDepth}`);
  const reader = new ByteReader(buffer, start, end);
  const list: Tlv[] = [];
  while (!reader.atEnd) {
    const tag = readTag(reader);
    const length = readLength(reader);
    const valueStart = reader.offset;
    // The message names the tag only when it is needed: building it costs more than the read.
    if (length > reader.remaining) {
      throw new ProtocolError('truncated', `TLV ${tagHex(tag)} value: need ${length} bytes, ${reader.remaining} left`);
    }
    const value = reader.bytes(length, 'TLV value');
    if (options.recursive && isConstructedTag(tag)) {
      list.push({ tag, value, children: decodeRange(buffer, valueStart, valueStart + length, depth + 1, options) });
    } else {
      list.push({ tag, value });
    }
  }
  return list;
}

/** Decodes a concatenation of data objects that must fill `bytes` exactly. */
export function decodeTlvs(bytes: Uint8Array, options: TlvDecodeOptions = {}): Tlv[] {
  const resolved = { maxDepth: options.maxDepth ?? DEFAULT_TLV_MAX_DEPTH, recursive: options.recursive ?? true };
  const buffer = asBuffer(bytes);
  return decodeRange(buffer, 0, buffer.length, 1, resolved);
}

/** Decodes exactly one data object. */
export function decodeTlv(bytes: Uint8Array, options: TlvDecodeOptions = {}): Tlv {
  const list = decodeTlvs(bytes, options);
  if (list.length !== 1) throw new ProtocolError('malformed', `expected one TLV, found ${list.length}`);
  return list[0];
}

/** The data object with `tag`, if any; a repeated tag is rejected rather than silently picked. */
export function findTlv(list: readonly Tlv[], tag: number): Tlv | undefined {
  let found: Tlv | undefined;
  for (const item of list) {
    if (item.tag !== tag) continue;
    if (found) throw new ProtocolError('malformed', `TLV ${tagHex(tag)} appears more than once`);
    found = item;
  }
  return found;
}

/** Value of an optional tag, checked against an exact length when one is given. */
export function optionalTlv(list: readonly Tlv[], tag: number, length?: number): Buffer | undefined {
  const item = findTlv(list, tag);
  if (item && length !== undefined && item.value.length !== length) {
    throw new ProtocolError('length', `TLV ${tagHex(tag)} must be ${length} bytes, got ${item.value.length}`);
  }
  return item?.value;
}

/** Value of a mandatory tag, checked against an exact length when one is given. */
export function requireTlv(list: readonly Tlv[], tag: number, length?: number): Buffer {
  const value = optionalTlv(list, tag, length);
  if (!value) throw new ProtocolError('missing-tag', `TLV ${tagHex(tag)} is missing`);
  return value;
}

/** Rejects any tag outside `allowed` (strict parsers of fixed-layout messages). */
export function rejectUnknownTags(list: readonly Tlv[], allowed: readonly number[]): void {
  for (const item of list) {
    if (!allowed.includes(item.tag)) throw new ProtocolError('unexpected-tag', `unexpected TLV ${tagHex(item.tag)}`);
  }
}
