import { asBuffer, checkInteger } from './bytes.js';
import { ProtocolError } from './errors.js';

/** Status words of PROTOCOL.md §3.2, defined once. */
export const SW = {
  OK: 0x9000,
  WRONG_SEQUENCE: 0x6985,
  BAD_DATA: 0x6a80,
  NOT_FOUND: 0x6a88,
  WRONG_LENGTH: 0x6700,
  BAD_INS: 0x6d00,
  BAD_CLA: 0x6e00,
  PAIRING_NOT_READY: 0x9484,
} as const;

/** `61xx`: more response data waiting, fetch with GET RESPONSE (§3.4). */
export const SW1_MORE_DATA = 0x61;

/** GET RESPONSE `00 C0 00 00` (ISO/IEC 7816-4 §11.4.4). */
export const GET_RESPONSE_HEADER = { cla: 0x00, ins: 0xc0, p1: 0x00, p2: 0x00 } as const;

export const MAX_SHORT_LC = 255;
export const MAX_SHORT_LE = 256;
export const MAX_EXTENDED_LC = 65_535;
export const MAX_EXTENDED_LE = 65_536;

export interface ApduHeader {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
}

/** A command APDU (ISO/IEC 7816-4 §5.1, cases 1–4). */
export interface CommandApdu extends ApduHeader {
  /** Command data; empty when the APDU has no Lc field. */
  readonly data: Buffer;
  /** Expected response length in bytes (1–256 short, 1–65536 extended); absent = no Le field. */
  readonly le?: number;
  /** True when Lc/Le use the extended (three-byte / two-byte) form. */
  readonly extended: boolean;
}

/** What `encodeCommandApdu` accepts: data optional, extended form chosen when needed. */
export interface CommandApduInput extends ApduHeader {
  readonly data?: Uint8Array;
  readonly le?: number;
  readonly extended?: boolean;
}

export interface ResponseApdu {
  readonly data: Buffer;
  readonly sw: number;
}

/** Status word as 4 upper-case hex digits, for messages and logs. */
export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

export function encodeCommandApdu(apdu: CommandApduInput): Buffer {
  checkInteger(apdu.cla, 0, 0xff, 'CLA');
  checkInteger(apdu.ins, 0, 0xff, 'INS');
  checkInteger(apdu.p1, 0, 0xff, 'P1');
  checkInteger(apdu.p2, 0, 0xff, 'P2');
  const data = apdu.data ?? Buffer.alloc(0);
  if (data.length > MAX_EXTENDED_LC) throw new ProtocolError('length', `command data of ${data.length} bytes`);
  if (apdu.le !== undefined) checkInteger(apdu.le, 1, MAX_EXTENDED_LE, 'Le');
  const le = apdu.le;
  const extended = (apdu.extended ?? false) || data.length > MAX_SHORT_LC || (le !== undefined && le > MAX_SHORT_LE);

  const header = [apdu.cla, apdu.ins, apdu.p1, apdu.p2];
  if (!extended) {
    const lc = data.length > 0 ? [data.length] : [];
    const leField = le === undefined ? [] : [le & 0xff]; // 256 → 00
    return Buffer.concat([Buffer.from([...header, ...lc]), data, Buffer.from(leField)]);
  }
  if (data.length === 0 && le === undefined) return Buffer.from(header);
  const lc = data.length > 0 ? [0x00, data.length >> 8, data.length & 0xff] : [];
  const leValue = le === undefined ? undefined : le & 0xffff; // 65536 → 0000
  let leField: number[] = [];
  if (leValue !== undefined)
    leField = data.length > 0 ? [leValue >> 8, leValue & 0xff] : [0x00, leValue >> 8, leValue & 0xff];
  return Buffer.concat([Buffer.from([...header, ...lc]), data, Buffer.from(leField)]);
}

/** Parses the four ISO/IEC 7816-4 cases in short and extended form; anything else is rejected. */
export function parseCommandApdu(raw: Uint8Array): CommandApdu {
  const bytes = asBuffer(raw);
  if (bytes.length < 4) throw new ProtocolError('truncated', 'command APDU shorter than its header');
  const body = bytes.length - 4;
  if (body === 0) return commandApdu(bytes, bytes.subarray(4, 4), undefined, false);
  const b0 = bytes[4];
  if (body === 1) return commandApdu(bytes, bytes.subarray(4, 4), b0 === 0 ? 256 : b0, false);
  if (b0 !== 0) {
    // Short Lc.
    if (body === 1 + b0) return commandApdu(bytes, bytes.subarray(5, 5 + b0), undefined, false);
    if (body === 2 + b0) {
      const le = bytes[5 + b0];
      return commandApdu(bytes, bytes.subarray(5, 5 + b0), le === 0 ? 256 : le, false);
    }
    throw new ProtocolError('length', `command APDU body of ${body} bytes does not match Lc ${b0}`);
  }
  // Extended: 00 followed by two bytes of Lc or Le.
  if (body < 3) throw new ProtocolError('length', 'extended length field truncated');
  const n = (bytes[5] << 8) | bytes[6];
  if (body === 3) return commandApdu(bytes, bytes.subarray(4, 4), n === 0 ? 65_536 : n, true);
  if (n === 0) throw new ProtocolError('malformed', 'extended Lc of zero');
  if (body === 3 + n) return commandApdu(bytes, bytes.subarray(7, 7 + n), undefined, true);
  if (body === 5 + n) {
    const le = (bytes[7 + n] << 8) | bytes[8 + n];
    return commandApdu(bytes, bytes.subarray(7, 7 + n), le === 0 ? 65_536 : le, true);
  }
  throw new ProtocolError('length', `command APDU body of ${body} bytes does not match extended Lc ${n}`);
}

/**
 * One object literal per shape: on every APDU an object spread followed by more fields costs
 * V8's slow clone path, microseconds against the tens of nanoseconds of a literal.
 */
function commandApdu(bytes: Buffer, data: Buffer, le: number | undefined, extended: boolean): CommandApdu {
  const cla = bytes[0];
  const ins = bytes[1];
  const p1 = bytes[2];
  const p2 = bytes[3];
  return le === undefined ? { cla, ins, p1, p2, data, extended } : { cla, ins, p1, p2, data, le, extended };
}

export function encodeResponseApdu(data: Uint8Array, sw: number = SW.OK): Buffer {
  checkInteger(sw, 0, 0xffff, 'status word');
  const out = Buffer.allocUnsafe(data.length + 2);
  out.set(data, 0);
  out.writeUInt16BE(sw, data.length);
  return out;
}

export function parseResponseApdu(raw: Uint8Array): ResponseApdu {
  const bytes = asBuffer(raw);
  if (bytes.length < 2) throw new ProtocolError('truncated', 'response APDU shorter than its status word');
  return { data: bytes.subarray(0, bytes.length - 2), sw: bytes.readUInt16BE(bytes.length - 2) };
}

/** `61xx` announcing `remaining` bytes (xx = 00 when 256 or more remain). */
export function moreDataStatus(remaining: number): number {
  checkInteger(remaining, 1, Number.MAX_SAFE_INTEGER, 'remaining bytes');
  return (SW1_MORE_DATA << 8) | (remaining >= 256 ? 0 : remaining);
}

export function isMoreDataStatus(sw: number): boolean {
  return sw >> 8 === SW1_MORE_DATA;
}

/**
 * Splits a long response for GET RESPONSE chaining (§3.4): every chunk but the last carries
 * `61xx`, the last carries `finalSw`.
 */
export function segmentResponse(data: Uint8Array, chunkSize = MAX_SHORT_LE, finalSw: number = SW.OK): ResponseApdu[] {
  checkInteger(chunkSize, 1, MAX_SHORT_LE, 'chunk size');
  const bytes = asBuffer(data);
  const chunks: ResponseApdu[] = [];
  let offset = 0;
  do {
    const end = Math.min(offset + chunkSize, bytes.length);
    const rest = bytes.length - end;
    chunks.push({ data: bytes.subarray(offset, end), sw: rest > 0 ? moreDataStatus(rest) : finalSw });
    offset = end;
  } while (offset < bytes.length);
  return chunks;
}
