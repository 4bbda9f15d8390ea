import { asBuffer, checkInteger, checkLength } from './bytes.js';
import { ProtocolError } from './errors.js';

/**
 * ECP polling frame, PROTOCOL.md §4.1:
 * `6A 02 CFG 02 SUBTYPE TCI(3) [reader group id(8)]` + CRC_A (low byte first).
 */
export const ECP_COMMAND = 0x6a;
export const ECP_VERSION = 0x02;
/** Terminal type byte that precedes the subtype (car / access terminal). */
export const ECP_TERMINAL_TYPE = 0x02;

export const ECP_CFG_PRESENT_AUTOMATICALLY = 0x80;
export const ECP_CFG_NO_AUTH_REQUIRED = 0x40;
const ECP_CFG_LENGTH_MASK = 0x0f;
const ECP_CFG_RESERVED_MASK = 0x30;

/** Car subtypes (§4.1); other ecosystems (e.g. Home Key) use other values, which parse as plain numbers. */
export const ECP_SUBTYPE = {
  NO_ID: 0x01,
  WITH_READER_ID: 0x05,
  PAIRING_PROMPT: 0x09,
  PAIRING_WITH_ID: 0x0b,
} as const;

export const ECP_TCI_LENGTH = 3;
export const ECP_READER_GROUP_ID_LENGTH = 8;
/** First TCI byte of a car terminal; the remaining 4 nibbles are manufacturer(3) and location(1). */
export const CAR_TCI_PREFIX = 0x01;

/** Reader location nibble **[stand-in]** (§4.1). */
export const READER_LOCATION = { door: 0x0, console: 0x1, trunk: 0x2 } as const;

export interface EcpFrame {
  /** CFG bit 7: the phone may present the key without user action. */
  readonly presentAutomatically: boolean;
  /** CFG bit 6: express mode, no user authentication required. */
  readonly noAuthRequired: boolean;
  readonly subtype: number;
  /** Terminal capability/identifier, 3 bytes (see `encodeCarTci`). */
  readonly tci: Buffer;
  /** Optional 8-byte reader group identifier. */
  readonly readerGroupId?: Buffer;
}

export interface CarTci {
  /** 12-bit manufacturer code. */
  readonly manufacturer: number;
  /** 4-bit reader location, see `READER_LOCATION`. */
  readonly location: number;
}

/** CRC_A of ISO/IEC 14443-3 (reflected CCITT polynomial, initial value 0x6363, no final XOR). */
export function crcA(data: Uint8Array): number {
  let crc = 0x6363;
  for (let i = 0; i < data.length; i++) {
    let x = (data[i] ^ crc) & 0xff;
    x = (x ^ (x << 4)) & 0xff;
    crc = ((crc >> 8) ^ (x << 8) ^ (x << 3) ^ (x >> 4)) & 0xffff;
  }
  return crc;
}

/** Appends CRC_A low byte first, as transmitted on the air interface. */
export function appendCrcA(data: Uint8Array): Buffer {
  const crc = crcA(data);
  const out = Buffer.allocUnsafe(data.length + 2);
  out.set(data, 0);
  out[data.length] = crc & 0xff;
  out[data.length + 1] = crc >> 8;
  return out;
}

export function encodeCarTci(tci: CarTci): Buffer {
  checkInteger(tci.manufacturer, 0, 0xfff, 'TCI manufacturer');
  checkInteger(tci.location, 0, 0xf, 'TCI reader location');
  return Buffer.from([CAR_TCI_PREFIX, tci.manufacturer >> 4, ((tci.manufacturer & 0xf) << 4) | tci.location]);
}

export function decodeCarTci(tci: Uint8Array): CarTci {
  checkLength(tci, ECP_TCI_LENGTH, 'TCI');
  if (tci[0] !== CAR_TCI_PREFIX) throw new ProtocolError('unsupported', 'TCI is not a car terminal (01…)');
  return { manufacturer: (tci[1] << 4) | (tci[2] >> 4), location: tci[2] & 0xf };
}

export function encodeEcpFrame(frame: EcpFrame): Buffer {
  checkInteger(frame.subtype, 0, 0xff, 'ECP subtype');
  checkLength(frame.tci, ECP_TCI_LENGTH, 'TCI');
  if (frame.readerGroupId) checkLength(frame.readerGroupId, ECP_READER_GROUP_ID_LENGTH, 'reader group id');
  const dataLength = ECP_TCI_LENGTH + (frame.readerGroupId ? ECP_READER_GROUP_ID_LENGTH : 0);
  const cfg =
    (frame.presentAutomatically ? ECP_CFG_PRESENT_AUTOMATICALLY : 0) |
    (frame.noAuthRequired ? ECP_CFG_NO_AUTH_REQUIRED : 0) |
    dataLength;
  const body = Buffer.concat([
    Buffer.from([ECP_COMMAND, ECP_VERSION, cfg, ECP_TERMINAL_TYPE, frame.subtype]),
    frame.tci,
    frame.readerGroupId ?? Buffer.alloc(0),
  ]);
  return appendCrcA(body);
}

/** Parses a frame including its CRC_A; a CRC mismatch fails with `bad-crc`. */
export function parseEcpFrame(raw: Uint8Array): EcpFrame {
  const bytes = asBuffer(raw);
  if (bytes.length < 5 + ECP_TCI_LENGTH + 2) throw new ProtocolError('truncated', 'ECP frame too short');
  const bodyLength = bytes.length - 2;
  const crc = crcA(bytes.subarray(0, bodyLength));
  if (bytes[bodyLength] !== (crc & 0xff) || bytes[bodyLength + 1] !== crc >> 8) {
    throw new ProtocolError('bad-crc', 'ECP frame CRC_A mismatch');
  }
  if (bytes[0] !== ECP_COMMAND || bytes[1] !== ECP_VERSION) throw new ProtocolError('malformed', 'not an ECP 2 frame');
  if (bytes[3] !== ECP_TERMINAL_TYPE) throw new ProtocolError('unsupported', 'unknown ECP terminal type');
  const cfg = bytes[2];
  if (cfg & ECP_CFG_RESERVED_MASK) throw new ProtocolError('malformed', 'reserved ECP CFG bits set');
  const dataLength = cfg & ECP_CFG_LENGTH_MASK;
  if (dataLength !== ECP_TCI_LENGTH && dataLength !== ECP_TCI_LENGTH + ECP_READER_GROUP_ID_LENGTH) {
    throw new ProtocolError('length', `ECP data length ${dataLength} is neither 3 nor 11`);
  }
  if (bodyLength !== 5 + dataLength) throw new ProtocolError('length', 'ECP frame length disagrees with CFG');
  const tci = bytes.subarray(5, 5 + ECP_TCI_LENGTH);
  const readerGroupId = dataLength > ECP_TCI_LENGTH ? bytes.subarray(8, 8 + ECP_READER_GROUP_ID_LENGTH) : undefined;
  return {
    presentAutomatically: (cfg & ECP_CFG_PRESENT_AUTOMATICALLY) !== 0,
    noAuthRequired: (cfg & ECP_CFG_NO_AUTH_REQUIRED) !== 0,
    subtype: bytes[4],
    tci,
    ...(readerGroupId ? { readerGroupId } : {}),
  };
}
