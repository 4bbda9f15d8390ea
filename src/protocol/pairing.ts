import { encodeCommandApdu, parseCommandApdu, type CommandApdu } from './apdu.js';
import { asBuffer, checkInteger, checkLength, u16 } from './bytes.js';
import { P256_POINT_LENGTH } from './crypto/p256.js';
import { ProtocolError } from './errors.js';
import { VEHICLE_IDENTIFIER_LENGTH } from './identifiers.js';
import type { ScryptCost } from './spake2plus-password.js';
import { decodeTlvs, findTlv, rejectUnknownTags, requireTlv, TLV, type Tlv } from './tlv.js';
import { CLA_ISO, CLA_PROPRIETARY, CLA_SECURED, FRAMEWORK_APPLET_AID, INS } from './transaction.js';

// Owner pairing on the framework applet, PROTOCOL.md §3.2–3.4: the APDUs, their data objects
// and the key-creation data exchanged in the pairing secure channel. Pure codecs, no state.

export { FRAMEWORK_APPLET_AID };

/** Instructions of the framework applet (§3.2); GET RESPONSE fetches `61xx` remainders (§3.4). */
export const FRAMEWORK_INS = {
  SELECT: INS.SELECT,
  SPAKE2_REQUEST: 0x30,
  SPAKE2_VERIFY: 0x32,
  WRITE_DATA: 0xd4,
  GET_DATA: 0xca,
  GET_RESPONSE: 0xc0,
  OP_CONTROL_FLOW: 0x3c,
} as const;

/** The CLA each framework instruction uses (§3.2): secured ones are 84 (§4.5). */
export const FRAMEWORK_CLASS_OF_INSTRUCTION: ReadonlyMap<number, number> = new Map([
  [FRAMEWORK_INS.SELECT, CLA_ISO],
  [FRAMEWORK_INS.SPAKE2_REQUEST, CLA_PROPRIETARY],
  [FRAMEWORK_INS.SPAKE2_VERIFY, CLA_PROPRIETARY],
  [FRAMEWORK_INS.WRITE_DATA, CLA_SECURED],
  [FRAMEWORK_INS.GET_DATA, CLA_SECURED],
  [FRAMEWORK_INS.GET_RESPONSE, CLA_ISO],
  [FRAMEWORK_INS.OP_CONTROL_FLOW, CLA_PROPRIETARY],
]);

/** WRITE DATA `84 D4 00 00` and GET DATA `84 CA DF 10` (§3.2), for `SecureChannel.wrapCommand`. */
export const WRITE_DATA_HEADER = { ins: FRAMEWORK_INS.WRITE_DATA, p1: 0x00, p2: 0x00 } as const;
export const GET_DATA_HEADER = { ins: FRAMEWORK_INS.GET_DATA, p1: 0xdf, p2: 0x10 } as const;

/** Data object tags of §3.2–3.4. */
export const PAIRING_TAG = {
  SPAKE2_VERSIONS: 0x5a,
  SELECTED_SPAKE2_VERSION: 0x5b,
  APPLET_VERSIONS: 0x5c,
  PAIRING_STATE: 0xd4,
  SCRYPT_PARAMETERS: 0x7f50,
  SALT: 0xc0,
  SCRYPT_N: 0xc1,
  SCRYPT_R: 0xc2,
  SCRYPT_P: 0xc3,
  BRAND: 0xd6,
  PROVER_SHARE: 0x50,
  VERIFIER_SHARE: 0x52,
  VEHICLE_EVIDENCE: 0x57,
  DEVICE_EVIDENCE: 0x58,
  VEHICLE_CERTIFICATE: 0xdf01,
  VEHICLE_OEM_ROOT: 0xdf02,
  VEHICLE_IDENTIFIER: 0xdf03,
  KEY_CREATION_OPTIONS: 0xdf04,
  DATA_COMPLETE: 0x55,
  ENDPOINT_CERTIFICATE: 0xdf10,
  INSTANCE_CA_CERTIFICATE: 0xdf11,
  DEVICE_OEM_CA_CROSS_CERTIFICATE: 0xdf12,
} as const;

/** SPAKE2+ version `0100` (§3.2). */
export const SPAKE2PLUS_VERSION_1 = 0x0100;
export const SUPPORTED_SPAKE2PLUS_VERSIONS: readonly number[] = [SPAKE2PLUS_VERSION_1];

/** `D4` in the SELECT response (§3.2). */
export type PairingState = 'none' | 'ready';
export const PAIRING_STATE_BYTES: Readonly<Record<PairingState, number>> = { none: 0x00, ready: 0x02 };

/** §3.1 step 5: the car allows this many failed SPAKE2+ attempts, then waits for a new verifier. */
export const MAX_FAILED_PAIRING_ATTEMPTS = 7;

export const PAIRING_SALT_LENGTH = 16;
export const EVIDENCE_LENGTH = 16;
export const BRAND_CODE_LENGTH = 2;
/**
 * Plaintext bytes per WRITE DATA block **[stand-in]**: padded to 224 and followed by the 8-byte
 * C-MAC, a block still fits a short APDU (Lc ≤ 255).
 */
export const MAX_WRITE_DATA_BLOCK = 223;
/** Upper bound on the reassembled WRITE DATA stream: two certificates and a few bytes. */
export const MAX_PAIRING_DATA_LENGTH = 8 * 1024;
/** Upper bound on each mailbox size a car may ask for in `DF04`. */
export const MAX_MAILBOX_SIZE = 4 * 1024;

const T = PAIRING_TAG;
const VERSION_LENGTH = 2;
const EMPTY = Buffer.alloc(0);

function toCommand(apdu: Uint8Array | CommandApdu): CommandApdu {
  return apdu instanceof Uint8Array ? parseCommandApdu(apdu) : apdu;
}

function expectHeader(command: CommandApdu, cla: number, ins: number, p1: number, p2: number, what: string): void {
  if (command.cla !== cla || command.ins !== ins) throw new ProtocolError('malformed', `not a ${what} command`);
  if (command.p1 !== p1 || command.p2 !== p2) throw new ProtocolError('malformed', `${what} P1 P2 must be ${p1} ${p2}`);
}

function checkVersionList(bytes: Uint8Array, what: string): void {
  if (bytes.length === 0 || bytes.length % VERSION_LENGTH !== 0 || bytes.length > 0x7e) {
    throw new ProtocolError('length', `${what} must be a non-empty list of 2-byte versions`);
  }
}

function encodeVersionList(versions: readonly number[]): Buffer {
  if (versions.length === 0) throw new ProtocolError('length', 'empty version list');
  return Buffer.concat(versions.map((version) => u16(version)));
}

/** Version list bytes → numbers. */
export function decodeVersionList(bytes: Uint8Array): number[] {
  checkVersionList(bytes, 'version list');
  const buffer = asBuffer(bytes);
  const versions: number[] = [];
  for (let i = 0; i < buffer.length; i += VERSION_LENGTH) versions.push(buffer.readUInt16BE(i));
  return versions;
}

function uintOf(bytes: Buffer): number {
  let value = 0;
  for (const byte of bytes) value = value * 256 + byte;
  return value;
}

function uintBytes(value: number, length: number, what: string): Buffer {
  checkInteger(value, 0, 256 ** length - 1, what);
  const out = Buffer.alloc(length);
  out.writeUIntBE(value, 0, length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// SELECT (§3.2)
// ---------------------------------------------------------------------------------------------

export interface FrameworkSelectResponse {
  readonly spake2Versions: readonly number[];
  /** Digital key applet versions, highest first, as listed by the device. */
  readonly appletVersions: readonly number[];
  readonly pairingState: PairingState;
}

/** `5A` SPAKE2+ versions, `5C` applet versions, `D4` pairing state. */
export function encodeFrameworkSelectResponse(response: FrameworkSelectResponse): Buffer {
  return Buffer.concat([
    TLV(T.SPAKE2_VERSIONS, encodeVersionList(response.spake2Versions)),
    TLV(T.APPLET_VERSIONS, encodeVersionList(response.appletVersions)),
    TLV(T.PAIRING_STATE, Buffer.from([PAIRING_STATE_BYTES[response.pairingState]])),
  ]);
}

export interface ParsedFrameworkSelectResponse extends FrameworkSelectResponse {
  /** The `5C` value exactly as sent, which the car echoes in SPAKE2+ REQUEST. */
  readonly appletVersionsBytes: Buffer;
}

export function parseFrameworkSelectResponse(data: Uint8Array): ParsedFrameworkSelectResponse {
  const list = decodeTlvs(data);
  rejectUnknownTags(list, [T.SPAKE2_VERSIONS, T.APPLET_VERSIONS, T.PAIRING_STATE]);
  const appletVersionsBytes = requireTlv(list, T.APPLET_VERSIONS);
  const state = requireTlv(list, T.PAIRING_STATE, 1)[0];
  const pairingState = (Object.keys(PAIRING_STATE_BYTES) as PairingState[]).find(
    (name) => PAIRING_STATE_BYTES[name] === state,
  );
  if (!pairingState) throw new ProtocolError('unsupported', `unknown pairing state ${state.toString(16)}`);
  return {
    spake2Versions: decodeVersionList(requireTlv(list, T.SPAKE2_VERSIONS)),
    appletVersions: decodeVersionList(appletVersionsBytes),
    appletVersionsBytes,
    pairingState,
  };
}

// ---------------------------------------------------------------------------------------------
// SPAKE2+ REQUEST `80 30 00 00` (§3.2)
// ---------------------------------------------------------------------------------------------

export interface Spake2RequestCommand {
  /** `5B`, 2 bytes: bound into the confirmation keys exactly as sent (§3.3). */
  readonly selectedVersion: Buffer;
  /** `5C`, the applet version list exactly as sent (§3.3). */
  readonly appletVersions: Buffer;
  readonly salt: Buffer;
  readonly scrypt: ScryptCost;
  /** `D6`, 2-byte brand code. */
  readonly brand: Buffer;
}

export function encodeSpake2RequestCommand(request: Spake2RequestCommand): Buffer {
  checkLength(request.selectedVersion, VERSION_LENGTH, 'selected SPAKE2+ version');
  checkVersionList(request.appletVersions, 'applet versions');
  checkLength(request.salt, PAIRING_SALT_LENGTH, 'salt');
  checkLength(request.brand, BRAND_CODE_LENGTH, 'brand code');
  const data = Buffer.concat([
    TLV(T.SELECTED_SPAKE2_VERSION, request.selectedVersion),
    TLV(T.APPLET_VERSIONS, request.appletVersions),
    TLV(
      T.SCRYPT_PARAMETERS,
      TLV(T.SALT, request.salt),
      TLV(T.SCRYPT_N, uintBytes(request.scrypt.N, 4, 'scrypt N')),
      TLV(T.SCRYPT_R, uintBytes(request.scrypt.r, 2, 'scrypt r')),
      TLV(T.SCRYPT_P, uintBytes(request.scrypt.p, 2, 'scrypt p')),
    ),
    TLV(T.BRAND, request.brand),
  ]);
  return encodeCommandApdu({
    cla: CLA_PROPRIETARY,
    ins: FRAMEWORK_INS.SPAKE2_REQUEST,
    p1: 0x00,
    p2: 0x00,
    data,
    le: 256,
  });
}

/** Parses the fields; the scrypt cost is only syntax-checked here (the device applies its policy). */
export function parseSpake2RequestCommand(apdu: Uint8Array | CommandApdu): Spake2RequestCommand {
  const command = toCommand(apdu);
  expectHeader(command, CLA_PROPRIETARY, FRAMEWORK_INS.SPAKE2_REQUEST, 0, 0, 'SPAKE2+ REQUEST');
  const list = decodeTlvs(command.data);
  rejectUnknownTags(list, [T.SELECTED_SPAKE2_VERSION, T.APPLET_VERSIONS, T.SCRYPT_PARAMETERS, T.BRAND]);
  const selectedVersion = requireTlv(list, T.SELECTED_SPAKE2_VERSION, VERSION_LENGTH);
  const appletVersions = requireTlv(list, T.APPLET_VERSIONS);
  checkVersionList(appletVersions, 'applet versions');
  const parameters = findTlv(list, T.SCRYPT_PARAMETERS);
  if (!parameters?.children) throw new ProtocolError('missing-tag', 'TLV 7F50 is missing');
  const inner = parameters.children;
  rejectUnknownTags(inner, [T.SALT, T.SCRYPT_N, T.SCRYPT_R, T.SCRYPT_P]);
  return {
    selectedVersion,
    appletVersions,
    salt: requireTlv(inner, T.SALT, PAIRING_SALT_LENGTH),
    scrypt: {
      N: uintOf(requireTlv(inner, T.SCRYPT_N, 4)),
      r: uintOf(requireTlv(inner, T.SCRYPT_R, 2)),
      p: uintOf(requireTlv(inner, T.SCRYPT_P, 2)),
    },
    brand: requireTlv(list, T.BRAND, BRAND_CODE_LENGTH),
  };
}

/** Response data `50(65) X`. */
export function encodeSpake2RequestResponse(X: Uint8Array): Buffer {
  checkLength(X, P256_POINT_LENGTH, 'X');
  return TLV(T.PROVER_SHARE, X);
}

/** X as sent; the car validates the point itself (invalid → OP CONTROL FLOW 0C, §3.3). */
export function parseSpake2RequestResponse(data: Uint8Array): Buffer {
  const list = decodeTlvs(data);
  rejectUnknownTags(list, [T.PROVER_SHARE]);
  return requireTlv(list, T.PROVER_SHARE, P256_POINT_LENGTH);
}

// ---------------------------------------------------------------------------------------------
// SPAKE2+ VERIFY `80 32 00 00` (§3.2)
// ---------------------------------------------------------------------------------------------

export interface Spake2VerifyCommand {
  readonly Y: Buffer;
  /** Car evidence M1. */
  readonly M1: Buffer;
}

export function encodeSpake2VerifyCommand(command: Spake2VerifyCommand): Buffer {
  checkLength(command.Y, P256_POINT_LENGTH, 'Y');
  checkLength(command.M1, EVIDENCE_LENGTH, 'M1');
  return encodeCommandApdu({
    cla: CLA_PROPRIETARY,
    ins: FRAMEWORK_INS.SPAKE2_VERIFY,
    p1: 0x00,
    p2: 0x00,
    data: Buffer.concat([TLV(T.VERIFIER_SHARE, command.Y), TLV(T.VEHICLE_EVIDENCE, command.M1)]),
    le: 256,
  });
}

export function parseSpake2VerifyCommand(apdu: Uint8Array | CommandApdu): Spake2VerifyCommand {
  const command = toCommand(apdu);
  expectHeader(command, CLA_PROPRIETARY, FRAMEWORK_INS.SPAKE2_VERIFY, 0, 0, 'SPAKE2+ VERIFY');
  const list = decodeTlvs(command.data);
  rejectUnknownTags(list, [T.VERIFIER_SHARE, T.VEHICLE_EVIDENCE]);
  return {
    Y: requireTlv(list, T.VERIFIER_SHARE, P256_POINT_LENGTH),
    M1: requireTlv(list, T.VEHICLE_EVIDENCE, EVIDENCE_LENGTH),
  };
}

/** Response data `58(16)` device evidence M2. */
export function encodeSpake2VerifyResponse(M2: Uint8Array): Buffer {
  checkLength(M2, EVIDENCE_LENGTH, 'M2');
  return TLV(T.DEVICE_EVIDENCE, M2);
}

export function parseSpake2VerifyResponse(data: Uint8Array): Buffer {
  const list = decodeTlvs(data);
  rejectUnknownTags(list, [T.DEVICE_EVIDENCE]);
  return requireTlv(list, T.DEVICE_EVIDENCE, EVIDENCE_LENGTH);
}

// ---------------------------------------------------------------------------------------------
// WRITE DATA (§3.4): one TLV stream, cut into blocks
// ---------------------------------------------------------------------------------------------

/** `DF04` **[stand-in]**: private mailbox size(2) ‖ confidential mailbox size(2) ‖ entitlements TLV (§6). */
export interface KeyCreationOptions {
  readonly privateMailboxSize: number;
  readonly confidentialMailboxSize: number;
  /** Encoded entitlements (§6); the device validates them when it creates the key. */
  readonly entitlements: Buffer;
}

export function encodeKeyCreationOptions(options: KeyCreationOptions): Buffer {
  checkInteger(options.privateMailboxSize, 0, MAX_MAILBOX_SIZE, 'private mailbox size');
  checkInteger(options.confidentialMailboxSize, 0, MAX_MAILBOX_SIZE, 'confidential mailbox size');
  return Buffer.concat([
    u16(options.privateMailboxSize),
    u16(options.confidentialMailboxSize),
    asBuffer(options.entitlements),
  ]);
}

export function decodeKeyCreationOptions(bytes: Uint8Array): KeyCreationOptions {
  const buffer = asBuffer(bytes);
  if (buffer.length < 4) throw new ProtocolError('truncated', 'key-creation options shorter than 4 bytes');
  const privateMailboxSize = buffer.readUInt16BE(0);
  const confidentialMailboxSize = buffer.readUInt16BE(2);
  if (privateMailboxSize > MAX_MAILBOX_SIZE || confidentialMailboxSize > MAX_MAILBOX_SIZE) {
    throw new ProtocolError('out-of-range', 'mailbox size above the supported maximum');
  }
  return { privateMailboxSize, confidentialMailboxSize, entitlements: buffer.subarray(4) };
}

/** What the car writes into the device (§3.4). */
export interface PairingData {
  /** DER. */
  readonly vehicleCertificate: Buffer;
  /** DER. */
  readonly vehicleOemRoot: Buffer;
  readonly vehicleIdentifier: Buffer;
  readonly options: KeyCreationOptions;
}

/** `DF01 ‖ DF02 ‖ DF03 ‖ DF04 ‖ 55 00`: the whole stream, before it is cut into blocks. */
export function encodePairingData(data: PairingData): Buffer {
  checkLength(data.vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
  const stream = Buffer.concat([
    TLV(T.VEHICLE_CERTIFICATE, data.vehicleCertificate),
    TLV(T.VEHICLE_OEM_ROOT, data.vehicleOemRoot),
    TLV(T.VEHICLE_IDENTIFIER, data.vehicleIdentifier),
    TLV(T.KEY_CREATION_OPTIONS, encodeKeyCreationOptions(data.options)),
    TLV(T.DATA_COMPLETE, EMPTY),
  ]);
  if (stream.length > MAX_PAIRING_DATA_LENGTH) throw new ProtocolError('length', 'pairing data too long');
  return stream;
}

/**
 * WRITE DATA blocks **[stand-in]**: consecutive slices of the stream, each at most `blockSize`
 * plaintext bytes, so the last block is the one that carries `55 00` (§3.4).
 */
export function splitWriteDataBlocks(stream: Uint8Array, blockSize = MAX_WRITE_DATA_BLOCK): Buffer[] {
  checkInteger(blockSize, 1, MAX_WRITE_DATA_BLOCK, 'WRITE DATA block size');
  const bytes = asBuffer(stream);
  const blocks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += blockSize) {
    blocks.push(bytes.subarray(offset, Math.min(offset + blockSize, bytes.length)));
  }
  return blocks;
}

export type PairingDataProgress =
  { readonly complete: false } | { readonly complete: true; readonly data: PairingData };

/**
 * Device side of reassembly: the stream so far is either a prefix (a TLV cut by a block
 * boundary, or no `55 00` yet) or complete. Anything else fails: a `55` before the end, an
 * unknown or repeated tag, or a stream longer than `MAX_PAIRING_DATA_LENGTH`.
 */
export function parsePairingDataStream(stream: Uint8Array): PairingDataProgress {
  if (stream.length > MAX_PAIRING_DATA_LENGTH) throw new ProtocolError('length', 'pairing data too long');
  let list: Tlv[];
  try {
    list = decodeTlvs(stream, { recursive: false });
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'truncated') return { complete: false };
    throw error;
  }
  rejectUnknownTags(list, [
    T.VEHICLE_CERTIFICATE,
    T.VEHICLE_OEM_ROOT,
    T.VEHICLE_IDENTIFIER,
    T.KEY_CREATION_OPTIONS,
    T.DATA_COMPLETE,
  ]);
  const end = list.findIndex((item) => item.tag === T.DATA_COMPLETE);
  if (end === -1) return { complete: false };
  if (end !== list.length - 1 || list[end].value.length !== 0) {
    throw new ProtocolError('malformed', '55 00 must close the pairing data');
  }
  return {
    complete: true,
    data: {
      vehicleCertificate: requireTlv(list, T.VEHICLE_CERTIFICATE),
      vehicleOemRoot: requireTlv(list, T.VEHICLE_OEM_ROOT),
      vehicleIdentifier: requireTlv(list, T.VEHICLE_IDENTIFIER, VEHICLE_IDENTIFIER_LENGTH),
      options: decodeKeyCreationOptions(requireTlv(list, T.KEY_CREATION_OPTIONS)),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// GET DATA (§3.4)
// ---------------------------------------------------------------------------------------------

/** `[endpoint, Instance CA, Device OEM CA cross-signed by the Vehicle OEM root]`, DER, the §2 order. */
export type EndpointChainDer = readonly [Buffer, Buffer, Buffer];

/** Plaintext of the GET DATA response: `DF10 ‖ DF11 ‖ DF12`. */
export function encodeEndpointChain(chain: EndpointChainDer): Buffer {
  return Buffer.concat([
    TLV(T.ENDPOINT_CERTIFICATE, chain[0]),
    TLV(T.INSTANCE_CA_CERTIFICATE, chain[1]),
    TLV(T.DEVICE_OEM_CA_CROSS_CERTIFICATE, chain[2]),
  ]);
}

export function parseEndpointChain(plaintext: Uint8Array): EndpointChainDer {
  const list = decodeTlvs(plaintext, { recursive: false });
  rejectUnknownTags(list, [T.ENDPOINT_CERTIFICATE, T.INSTANCE_CA_CERTIFICATE, T.DEVICE_OEM_CA_CROSS_CERTIFICATE]);
  return [
    requireTlv(list, T.ENDPOINT_CERTIFICATE),
    requireTlv(list, T.INSTANCE_CA_CERTIFICATE),
    requireTlv(list, T.DEVICE_OEM_CA_CROSS_CERTIFICATE),
  ];
}

/** GET RESPONSE `00 C0 00 00 Le` for the `xx` of a `61xx` status (00 = 256). */
export function encodeGetResponseCommand(sw: number): Buffer {
  const announced = sw & 0xff;
  return encodeCommandApdu({
    cla: CLA_ISO,
    ins: FRAMEWORK_INS.GET_RESPONSE,
    p1: 0x00,
    p2: 0x00,
    le: announced === 0 ? 256 : announced,
  });
}
