import { encodeCommandApdu, parseCommandApdu, type CommandApdu } from './apdu.js';
import { checkInteger, checkLength, fromHex } from './bytes.js';
import { constantTimeEqual } from './crypto/constant-time.js';
import { hkdfSha256, x963KdfSha256 } from './crypto/kdf.js';
import { checkPublicPoint, ECDSA_SIGNATURE_LENGTH, P256_COORDINATE_LENGTH, P256_POINT_LENGTH } from './crypto/p256.js';
import type { P256KeyPair, P256PublicKey } from './crypto/p256.js';
import { ProtocolError } from './errors.js';
import { KEY_IDENTIFIER_LENGTHS, READER_IDENTIFIER_LENGTH, type KeyIdentifierProfile } from './identifiers.js';
import { decodeTlvs, rejectUnknownTags, requireTlv, optionalTlv, TLV } from './tlv.js';

// ---------------------------------------------------------------------------------------------
// Constants (§3.2, §4.2)
// ---------------------------------------------------------------------------------------------

/** "CCCDKFv1", the framework applet (pairing, §3.2). */
export const FRAMEWORK_APPLET_AID = fromHex('a000000809434343444b467631');
/** "CCCDKAv1", the transaction applet (§4.2). */
export const TRANSACTION_APPLET_AID = fromHex('a000000809434343444b417631');

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;
/** Secured commands (§4.5). */
export const CLA_SECURED = 0x84;

export const INS = {
  SELECT: 0xa4,
  AUTH0: 0x80,
  AUTH1: 0x81,
  EXCHANGE: 0xc9,
  CONTROL_FLOW: 0x3c,
} as const;

/** SELECT by DF name: P1 04, P2 00. */
export const SELECT_P1_BY_NAME = 0x04;

export const PROTOCOL_VERSION_2 = 0x0200;
export const PROTOCOL_VERSION_1 = 0x0100;
/** What this project's applet and reader support, highest first (§4.2). */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [PROTOCOL_VERSION_2, PROTOCOL_VERSION_1];

/** Data object tags of the transaction applet (§4.2–4.3). */
export const TRANSACTION_TAG = {
  VERSIONS: 0x5c,
  READER_EPHEMERAL_PK: 0x87,
  TRANSACTION_ID: 0x4c,
  READER_ID: 0x4d,
  ENDPOINT_EPHEMERAL_PK: 0x86,
  CRYPTOGRAM: 0x9d,
  SIGNATURE: 0x9e,
  KEY_IDENTIFIER: 0x4e,
  CONFIDENTIAL_MAILBOX: 0x4a,
  PRIVATE_MAILBOX: 0x4b,
  USAGE: 0x93,
} as const;

export const TRANSACTION_ID_LENGTH = 16;
export const CRYPTOGRAM_LENGTH = 16;
export const VERSION_LENGTH = 2;

/** Usage strings bound into the two signatures (§4.3). */
export type SignatureUsage = 'reader' | 'device';
export const SIGNATURE_USAGE: Readonly<Record<SignatureUsage, Buffer>> = {
  reader: fromHex('415d9569'),
  device: fromHex('4e887b4c'),
};

/** Interface byte of the NFC transport, bound into every derived key (§4.3, §4.4). */
export const NFC_INTERFACE_BYTE = 0x5e;

/** AUTH0 P2 transaction codes **[stand-in]** (§4.2). */
export type TransactionCode = 'unlock' | 'lock' | 'engine-start' | 'trunk';
export const TRANSACTION_CODE_BYTES: Readonly<Record<TransactionCode, number>> = {
  unlock: 0x01,
  lock: 0x02,
  'engine-start': 0x03,
  trunk: 0x04,
};
/** Engine start always needs a standard transaction (§4.4). */
export const FAST_TRANSACTION_CODES: readonly TransactionCode[] = ['unlock', 'lock', 'trunk'];

/** AUTH0 P1 (§4.2). */
export const AUTH0_P1_STANDARD_ONLY = 0x00;
export const AUTH0_P1_REQUEST_FAST = 0x01;

/** CONTROL FLOW P1 and P2 reasons **[stand-in]** (§4.2). */
export const CONTROL_FLOW_P1_FAILURE = 0x00;
export const CONTROL_FLOW_P1_SUCCESS = 0x01;
export type ControlFlowReason =
  'none' | 'key-unknown' | 'key-suspended-or-revoked' | 'entitlement-denied' | 'invalid-point' | 'attempts-exhausted';
export const CONTROL_FLOW_REASON_BYTES: Readonly<Record<ControlFlowReason, number>> = {
  none: 0x00,
  'key-unknown': 0x01,
  'key-suspended-or-revoked': 0x02,
  'entitlement-denied': 0x03,
  'invalid-point': 0x0c,
  'attempts-exhausted': 0x0d,
};

/** HKDF labels (§4.3, §4.4). */
export const KEY_LABEL = {
  VOLATILE: Buffer.from('Volatile', 'ascii'),
  PERSISTENT: Buffer.from('Persistent', 'ascii'),
  VOLATILE_FAST: Buffer.from('VolatileFast', 'ascii'),
} as const;

/** EXCHANGE `84 C9 00 00` (§4.2); wrap the payload with `SecureChannel.wrapCommand`. */
export const EXCHANGE_HEADER = { ins: INS.EXCHANGE, p1: 0x00, p2: 0x00 } as const;

const T = TRANSACTION_TAG;

function reverseLookup<K extends string>(table: Readonly<Record<K, number>>, value: number, what: string): K {
  for (const key of Object.keys(table) as K[]) if (table[key] === value) return key;
  throw new ProtocolError('unsupported', `unknown ${what} ${value.toString(16).padStart(2, '0')}`);
}

function toCommand(apdu: Uint8Array | CommandApdu): CommandApdu {
  return apdu instanceof Uint8Array ? parseCommandApdu(apdu) : apdu;
}

function expectHeader(apdu: CommandApdu, cla: number, ins: number, what: string): void {
  if (apdu.cla !== cla || apdu.ins !== ins) throw new ProtocolError('malformed', `not a ${what} command`);
}

function encodeVersions(versions: readonly number[]): Buffer {
  if (versions.length === 0) throw new ProtocolError('length', 'empty version list');
  const out = Buffer.allocUnsafe(versions.length * VERSION_LENGTH);
  versions.forEach((version, i) => {
    checkInteger(version, 0, 0xffff, 'protocol version');
    out.writeUInt16BE(version, i * VERSION_LENGTH);
  });
  return out;
}

function decodeVersions(bytes: Buffer): number[] {
  if (bytes.length === 0 || bytes.length % VERSION_LENGTH !== 0) {
    throw new ProtocolError('length', 'version list must be a non-empty list of 2-byte versions');
  }
  const versions: number[] = [];
  for (let i = 0; i < bytes.length; i += VERSION_LENGTH) versions.push(bytes.readUInt16BE(i));
  return versions;
}

// ---------------------------------------------------------------------------------------------
// Version negotiation (§4.2)
// ---------------------------------------------------------------------------------------------

/** The highest version the reader supports that the device also lists; none → `unsupported`. */
export function negotiateVersion(readerSupported: readonly number[], deviceVersions: readonly number[]): number {
  let best: number | undefined;
  for (const version of readerSupported) {
    if (deviceVersions.includes(version) && (best === undefined || version > best)) best = version;
  }
  if (best === undefined) throw new ProtocolError('unsupported', 'no protocol version in common');
  return best;
}

/** Device side: the reader's selected version must be one the device offered. */
export function checkSelectedVersion(selected: number, deviceVersions: readonly number[]): void {
  if (!deviceVersions.includes(selected)) {
    throw new ProtocolError('unsupported', `selected version ${selected.toString(16)} was not offered`);
  }
}

// ---------------------------------------------------------------------------------------------
// SELECT
// ---------------------------------------------------------------------------------------------

/** `00 A4 04 00 Lc AID 00`. */
export function encodeSelectCommand(aid: Uint8Array = TRANSACTION_APPLET_AID): Buffer {
  if (aid.length < 5 || aid.length > 16) throw new ProtocolError('length', 'AID must be 5–16 bytes');
  return encodeCommandApdu({ cla: CLA_ISO, ins: INS.SELECT, p1: SELECT_P1_BY_NAME, p2: 0x00, data: aid, le: 256 });
}

/** Returns the AID of a SELECT by name. */
export function parseSelectCommand(apdu: Uint8Array | CommandApdu): Buffer {
  const command = toCommand(apdu);
  expectHeader(command, CLA_ISO, INS.SELECT, 'SELECT');
  if (command.p1 !== SELECT_P1_BY_NAME || command.p2 !== 0x00) throw new ProtocolError('unsupported', 'SELECT mode');
  if (command.data.length < 5 || command.data.length > 16) throw new ProtocolError('length', 'AID must be 5–16 bytes');
  return command.data;
}

/** Transaction applet SELECT response data: `TLV(5C, versions)`, highest first. */
export function encodeSelectResponse(versions: readonly number[] = SUPPORTED_PROTOCOL_VERSIONS): Buffer {
  return TLV(T.VERSIONS, encodeVersions(versions));
}

export function parseSelectResponse(data: Uint8Array): number[] {
  const list = decodeTlvs(data);
  rejectUnknownTags(list, [T.VERSIONS]);
  return decodeVersions(requireTlv(list, T.VERSIONS));
}

// ---------------------------------------------------------------------------------------------
// AUTH0
// ---------------------------------------------------------------------------------------------

export interface Auth0Command {
  /** P1 = 01: the device should also return a fast cryptogram. */
  readonly requestFast: boolean;
  /** P2. */
  readonly transactionCode: TransactionCode;
  readonly selectedVersion: number;
  /** 65-byte uncompressed point. */
  readonly readerEphemeralPublicKey: Buffer;
  readonly transactionId: Buffer;
  /** vehicle identifier ‖ reader index (16 bytes). */
  readonly readerId: Buffer;
}

/** P1 ‖ P2 of AUTH0, the "flags" bound into every derived key. */
export function auth0Flags(requestFast: boolean, transactionCode: TransactionCode): { p1: number; p2: number } {
  return {
    p1: requestFast ? AUTH0_P1_REQUEST_FAST : AUTH0_P1_STANDARD_ONLY,
    p2: TRANSACTION_CODE_BYTES[transactionCode],
  };
}

/** `80 80 P1 P2 Lc 5C(2) 87(65) 4C(16) 4D(16)` (no Le, as in the vector). */
export function encodeAuth0Command(command: Auth0Command): Buffer {
  checkPublicPoint(command.readerEphemeralPublicKey, 'reader ephemeral key');
  checkLength(command.transactionId, TRANSACTION_ID_LENGTH, 'transaction id');
  checkLength(command.readerId, READER_IDENTIFIER_LENGTH, 'reader id');
  const { p1, p2 } = auth0Flags(command.requestFast, command.transactionCode);
  const data = Buffer.concat([
    TLV(T.VERSIONS, encodeVersions([command.selectedVersion])),
    TLV(T.READER_EPHEMERAL_PK, command.readerEphemeralPublicKey),
    TLV(T.TRANSACTION_ID, command.transactionId),
    TLV(T.READER_ID, command.readerId),
  ]);
  return encodeCommandApdu({ cla: CLA_PROPRIETARY, ins: INS.AUTH0, p1, p2, data });
}

export function parseAuth0Command(apdu: Uint8Array | CommandApdu): Auth0Command {
  const command = toCommand(apdu);
  expectHeader(command, CLA_PROPRIETARY, INS.AUTH0, 'AUTH0');
  if (command.p1 !== AUTH0_P1_STANDARD_ONLY && command.p1 !== AUTH0_P1_REQUEST_FAST) {
    throw new ProtocolError('unsupported', 'AUTH0 P1 must be 00 or 01');
  }
  const transactionCode = reverseLookup(TRANSACTION_CODE_BYTES, command.p2, 'transaction code');
  const list = decodeTlvs(command.data);
  rejectUnknownTags(list, [T.VERSIONS, T.READER_EPHEMERAL_PK, T.TRANSACTION_ID, T.READER_ID]);
  const readerEphemeralPublicKey = requireTlv(list, T.READER_EPHEMERAL_PK, P256_POINT_LENGTH);
  checkPublicPoint(readerEphemeralPublicKey, 'reader ephemeral key');
  return {
    requestFast: command.p1 === AUTH0_P1_REQUEST_FAST,
    transactionCode,
    selectedVersion: requireTlv(list, T.VERSIONS, VERSION_LENGTH).readUInt16BE(0),
    readerEphemeralPublicKey,
    transactionId: requireTlv(list, T.TRANSACTION_ID, TRANSACTION_ID_LENGTH),
    readerId: requireTlv(list, T.READER_ID, READER_IDENTIFIER_LENGTH),
  };
}

export interface Auth0Response {
  readonly endpointEphemeralPublicKey: Buffer;
  /** Present when AUTH0 P1 = 01 (random when the device has no Kpersistent for this reader). */
  readonly cryptogram?: Buffer;
}

/** AUTH0 response data: `86(65) [9D(16)]`. */
export function encodeAuth0Response(response: Auth0Response): Buffer {
  checkPublicPoint(response.endpointEphemeralPublicKey, 'endpoint ephemeral key');
  const parts = [TLV(T.ENDPOINT_EPHEMERAL_PK, response.endpointEphemeralPublicKey)];
  if (response.cryptogram) {
    checkLength(response.cryptogram, CRYPTOGRAM_LENGTH, 'cryptogram');
    parts.push(TLV(T.CRYPTOGRAM, response.cryptogram));
  }
  return Buffer.concat(parts);
}

export function parseAuth0Response(data: Uint8Array): Auth0Response {
  const list = decodeTlvs(data);
  rejectUnknownTags(list, [T.ENDPOINT_EPHEMERAL_PK, T.CRYPTOGRAM]);
  const endpointEphemeralPublicKey = requireTlv(list, T.ENDPOINT_EPHEMERAL_PK, P256_POINT_LENGTH);
  checkPublicPoint(endpointEphemeralPublicKey, 'endpoint ephemeral key');
  const cryptogram = optionalTlv(list, T.CRYPTOGRAM, CRYPTOGRAM_LENGTH);
  return cryptogram ? { endpointEphemeralPublicKey, cryptogram } : { endpointEphemeralPublicKey };
}

// ---------------------------------------------------------------------------------------------
// AUTH1
// ---------------------------------------------------------------------------------------------

/** `80 81 00 00 Lc 9E(64)`. */
export function encodeAuth1Command(readerSignature: Uint8Array): Buffer {
  checkLength(readerSignature, ECDSA_SIGNATURE_LENGTH, 'reader signature');
  return encodeCommandApdu({
    cla: CLA_PROPRIETARY,
    ins: INS.AUTH1,
    p1: 0x00,
    p2: 0x00,
    data: TLV(T.SIGNATURE, readerSignature),
  });
}

/** Returns the 64-byte reader signature. */
export function parseAuth1Command(apdu: Uint8Array | CommandApdu): Buffer {
  const command = toCommand(apdu);
  expectHeader(command, CLA_PROPRIETARY, INS.AUTH1, 'AUTH1');
  if (command.p1 !== 0 || command.p2 !== 0) throw new ProtocolError('malformed', 'AUTH1 P1 P2 must be 00 00');
  const list = decodeTlvs(command.data);
  rejectUnknownTags(list, [T.SIGNATURE]);
  return requireTlv(list, T.SIGNATURE, ECDSA_SIGNATURE_LENGTH);
}

/** AUTH1 response before encryption (§4.3). */
export interface Auth1Response {
  /** 8 bytes (default profile) or 6 bytes (Home-Key profile), §4.6. */
  readonly keyIdentifier: Buffer;
  readonly deviceSignature: Buffer;
  /** Optional subset of the confidential mailbox (`4A`). */
  readonly confidentialMailbox?: Buffer;
  /** Optional subset of the private mailbox (`4B`). */
  readonly privateMailbox?: Buffer;
}

const KEY_IDENTIFIER_LENGTH_SET: readonly number[] = Object.values(KEY_IDENTIFIER_LENGTHS);

/** `4E(keyId) 9E(64) [4A(...)] [4B(...)]`, the plaintext the secure channel encrypts at counter 0. */
export function encodeAuth1Response(response: Auth1Response): Buffer {
  if (!KEY_IDENTIFIER_LENGTH_SET.includes(response.keyIdentifier.length)) {
    throw new ProtocolError('length', 'key identifier must be 6 or 8 bytes');
  }
  checkLength(response.deviceSignature, ECDSA_SIGNATURE_LENGTH, 'device signature');
  const parts = [TLV(T.KEY_IDENTIFIER, response.keyIdentifier), TLV(T.SIGNATURE, response.deviceSignature)];
  if (response.confidentialMailbox) parts.push(TLV(T.CONFIDENTIAL_MAILBOX, response.confidentialMailbox));
  if (response.privateMailbox) parts.push(TLV(T.PRIVATE_MAILBOX, response.privateMailbox));
  return Buffer.concat(parts);
}

/** Parses the decrypted AUTH1 response; with a profile the key identifier length is enforced. */
export function parseAuth1Response(plaintext: Uint8Array, profile?: KeyIdentifierProfile): Auth1Response {
  const list = decodeTlvs(plaintext);
  rejectUnknownTags(list, [T.KEY_IDENTIFIER, T.SIGNATURE, T.CONFIDENTIAL_MAILBOX, T.PRIVATE_MAILBOX]);
  const keyIdentifier = requireTlv(list, T.KEY_IDENTIFIER, profile ? KEY_IDENTIFIER_LENGTHS[profile] : undefined);
  if (!KEY_IDENTIFIER_LENGTH_SET.includes(keyIdentifier.length)) {
    throw new ProtocolError('length', 'key identifier must be 6 or 8 bytes');
  }
  const confidentialMailbox = optionalTlv(list, T.CONFIDENTIAL_MAILBOX);
  const privateMailbox = optionalTlv(list, T.PRIVATE_MAILBOX);
  return {
    keyIdentifier,
    deviceSignature: requireTlv(list, T.SIGNATURE, ECDSA_SIGNATURE_LENGTH),
    ...(confidentialMailbox ? { confidentialMailbox } : {}),
    ...(privateMailbox ? { privateMailbox } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// CONTROL FLOW
// ---------------------------------------------------------------------------------------------

export interface ControlFlowCommand {
  readonly success: boolean;
  readonly reason: ControlFlowReason;
}

/** `80 3C P1 P2` (case 1). */
export function encodeControlFlowCommand(command: ControlFlowCommand): Buffer {
  return encodeCommandApdu({
    cla: CLA_PROPRIETARY,
    ins: INS.CONTROL_FLOW,
    p1: command.success ? CONTROL_FLOW_P1_SUCCESS : CONTROL_FLOW_P1_FAILURE,
    p2: CONTROL_FLOW_REASON_BYTES[command.reason],
  });
}

export function parseControlFlowCommand(apdu: Uint8Array | CommandApdu): ControlFlowCommand {
  const command = toCommand(apdu);
  expectHeader(command, CLA_PROPRIETARY, INS.CONTROL_FLOW, 'CONTROL FLOW');
  if (command.p1 !== CONTROL_FLOW_P1_SUCCESS && command.p1 !== CONTROL_FLOW_P1_FAILURE) {
    throw new ProtocolError('unsupported', 'CONTROL FLOW P1 must be 00 or 01');
  }
  if (command.data.length !== 0) throw new ProtocolError('length', 'CONTROL FLOW carries no data');
  return {
    success: command.p1 === CONTROL_FLOW_P1_SUCCESS,
    reason: reverseLookup(CONTROL_FLOW_REASON_BYTES, command.p2, 'control flow reason'),
  };
}

// ---------------------------------------------------------------------------------------------
// Signatures (§4.3)
// ---------------------------------------------------------------------------------------------

/** What both signatures bind. */
export interface SignatureContext {
  readonly readerId: Buffer;
  readonly readerEphemeralPublicKey: Buffer;
  readonly endpointEphemeralPublicKey: Buffer;
  readonly transactionId: Buffer;
}

function xOf(point: Buffer, what: string): Buffer {
  checkPublicPoint(point, what);
  return point.subarray(1, 1 + P256_COORDINATE_LENGTH);
}

/** `TLV 4D reader_id ‖ TLV 86 endpoint_eph.x ‖ TLV 87 reader_eph.x ‖ TLV 4C txid ‖ TLV 93 usage`. */
export function signatureInput(usage: SignatureUsage, context: SignatureContext): Buffer {
  checkLength(context.readerId, READER_IDENTIFIER_LENGTH, 'reader id');
  checkLength(context.transactionId, TRANSACTION_ID_LENGTH, 'transaction id');
  return Buffer.concat([
    TLV(T.READER_ID, context.readerId),
    TLV(T.ENDPOINT_EPHEMERAL_PK, xOf(context.endpointEphemeralPublicKey, 'endpoint ephemeral key')),
    TLV(T.READER_EPHEMERAL_PK, xOf(context.readerEphemeralPublicKey, 'reader ephemeral key')),
    TLV(T.TRANSACTION_ID, context.transactionId),
    TLV(T.USAGE, SIGNATURE_USAGE[usage]),
  ]);
}

/** Reader signature with the vehicle long-term key (AUTH1 command). */
export function signReaderAuthentication(vehicleKey: P256KeyPair, context: SignatureContext): Buffer {
  return vehicleKey.sign(signatureInput('reader', context));
}

/** Device side: verify the reader before revealing anything (§4.3). */
export function verifyReaderAuthentication(
  vehiclePublicKey: P256PublicKey,
  context: SignatureContext,
  signature: Uint8Array,
): boolean {
  return vehiclePublicKey.verify(signatureInput('reader', context), signature);
}

/** Device signature with the endpoint long-term key (AUTH1 response). */
export function signDeviceAuthentication(endpointKey: P256KeyPair, context: SignatureContext): Buffer {
  return endpointKey.sign(signatureInput('device', context));
}

export function verifyDeviceAuthentication(
  endpointPublicKey: P256PublicKey,
  context: SignatureContext,
  signature: Uint8Array,
): boolean {
  return endpointPublicKey.verify(signatureInput('device', context), signature);
}

// ---------------------------------------------------------------------------------------------
// Key schedules (§4.3, §4.4)
// ---------------------------------------------------------------------------------------------

/** Everything of one transaction that the key schedules bind. */
export interface TransactionContext extends SignatureContext {
  /** AUTH0 P1. */
  readonly p1: number;
  /** AUTH0 P2. */
  readonly p2: number;
  readonly selectedVersion: number;
  /** The versions the device listed in its SELECT response, in its order. */
  readonly deviceVersions: readonly number[];
}

/** Builds the context from the AUTH0 exchange and the device's SELECT response. */
export function transactionContext(
  auth0: Auth0Command,
  response: Auth0Response,
  deviceVersions: readonly number[],
): TransactionContext {
  const { p1, p2 } = auth0Flags(auth0.requestFast, auth0.transactionCode);
  return {
    readerId: auth0.readerId,
    readerEphemeralPublicKey: auth0.readerEphemeralPublicKey,
    endpointEphemeralPublicKey: response.endpointEphemeralPublicKey,
    transactionId: auth0.transactionId,
    p1,
    p2,
    selectedVersion: auth0.selectedVersion,
    deviceVersions,
  };
}

export interface SessionKeys {
  readonly kenc: Buffer;
  readonly kmac: Buffer;
  readonly krmac: Buffer;
}

export interface StandardKeys extends SessionKeys {
  readonly kpersistent: Buffer;
}

export interface FastKeys extends SessionKeys {
  readonly cryptogram: Buffer;
}

function flagBytes(context: TransactionContext): Buffer {
  checkInteger(context.p1, 0, 0xff, 'P1');
  checkInteger(context.p2, 0, 0xff, 'P2');
  return Buffer.from([context.p1, context.p2]);
}

/** `Kdh = X9.63-KDF-SHA256(Z, sharedInfo = txid, 32)`. */
export function deriveKdh(sharedSecretX: Uint8Array, transactionId: Uint8Array): Buffer {
  checkLength(sharedSecretX, P256_COORDINATE_LENGTH, 'ECDH shared secret');
  checkLength(transactionId, TRANSACTION_ID_LENGTH, 'transaction id');
  return x963KdfSha256(sharedSecretX, transactionId, 32);
}

/** `reader_eph.x ‖ endpoint_eph.x ‖ txid ‖ 5E ‖ P1 P2 ‖ label ‖ TLV 5C selected ‖ TLV 5C device_versions`. */
export function standardKeyInfo(context: TransactionContext, label: Uint8Array): Buffer {
  checkLength(context.transactionId, TRANSACTION_ID_LENGTH, 'transaction id');
  return Buffer.concat([
    xOf(context.readerEphemeralPublicKey, 'reader ephemeral key'),
    xOf(context.endpointEphemeralPublicKey, 'endpoint ephemeral key'),
    context.transactionId,
    Buffer.from([NFC_INTERFACE_BYTE]),
    flagBytes(context),
    label,
    TLV(T.VERSIONS, encodeVersions([context.selectedVersion])),
    TLV(T.VERSIONS, encodeVersions(context.deviceVersions)),
  ]);
}

/** Standard key schedule from `Kdh` (exposed for vectors); most callers want `deriveStandardKeys`. */
export function deriveStandardKeysFromKdh(kdh: Uint8Array, context: TransactionContext): StandardKeys {
  const volatile = hkdfSha256(kdh, undefined, standardKeyInfo(context, KEY_LABEL.VOLATILE), 48);
  return {
    kenc: volatile.subarray(0, 16),
    kmac: volatile.subarray(16, 32),
    krmac: volatile.subarray(32, 48),
    kpersistent: hkdfSha256(kdh, undefined, standardKeyInfo(context, KEY_LABEL.PERSISTENT), 32),
  };
}

/** Standard transaction keys from the ECDH x coordinate `Z` (§4.3). */
export function deriveStandardKeys(sharedSecretX: Uint8Array, context: TransactionContext): StandardKeys {
  return deriveStandardKeysFromKdh(deriveKdh(sharedSecretX, context.transactionId), context);
}

export interface FastContext extends TransactionContext {
  /** Vehicle long-term public key (65 bytes). */
  readonly readerLongTermPublicKey: Buffer;
  /** Endpoint long-term public key (65 bytes). */
  readonly endpointLongTermPublicKey: Buffer;
}

/**
 * The fast context as one object literal (on this path an object spread with added fields takes
 * V8's slow clone, several microseconds per transaction).
 */
export function fastContext(
  context: TransactionContext,
  readerLongTermPublicKey: Buffer,
  endpointLongTermPublicKey: Buffer,
): FastContext {
  return {
    readerId: context.readerId,
    readerEphemeralPublicKey: context.readerEphemeralPublicKey,
    endpointEphemeralPublicKey: context.endpointEphemeralPublicKey,
    transactionId: context.transactionId,
    p1: context.p1,
    p2: context.p2,
    selectedVersion: context.selectedVersion,
    deviceVersions: context.deviceVersions,
    readerLongTermPublicKey,
    endpointLongTermPublicKey,
  };
}

/**
 * `reader_lt.x ‖ "VolatileFast" ‖ reader_id ‖ endpoint_lt.x ‖ 5E ‖ TLV 5C device_versions ‖
 * TLV 5C selected ‖ reader_eph.x ‖ txid ‖ P1 P2 ‖ endpoint_eph.x` (§4.4; note the version order
 * is the reverse of §4.3).
 */
export function fastKeyInfo(context: FastContext): Buffer {
  checkLength(context.readerId, READER_IDENTIFIER_LENGTH, 'reader id');
  checkLength(context.transactionId, TRANSACTION_ID_LENGTH, 'transaction id');
  return Buffer.concat([
    xOf(context.readerLongTermPublicKey, 'reader long-term key'),
    KEY_LABEL.VOLATILE_FAST,
    context.readerId,
    xOf(context.endpointLongTermPublicKey, 'endpoint long-term key'),
    Buffer.from([NFC_INTERFACE_BYTE]),
    TLV(T.VERSIONS, encodeVersions(context.deviceVersions)),
    TLV(T.VERSIONS, encodeVersions([context.selectedVersion])),
    xOf(context.readerEphemeralPublicKey, 'reader ephemeral key'),
    context.transactionId,
    flagBytes(context),
    xOf(context.endpointEphemeralPublicKey, 'endpoint ephemeral key'),
  ]);
}

/** `OKM = HKDF(Kpersistent, info_fast, 64)` → cryptogram ‖ Kenc ‖ Kmac ‖ Krmac (§4.4). */
export function deriveFastKeys(kpersistent: Uint8Array, context: FastContext): FastKeys {
  checkLength(kpersistent, 32, 'Kpersistent');
  const okm = hkdfSha256(kpersistent, undefined, fastKeyInfo(context), 64);
  return {
    cryptogram: okm.subarray(0, 16),
    kenc: okm.subarray(16, 32),
    kmac: okm.subarray(32, 48),
    krmac: okm.subarray(48, 64),
  };
}

/** One endpoint the car may recognise by its fast cryptogram. */
export interface FastCandidate {
  readonly kpersistent: Uint8Array;
  readonly endpointLongTermPublicKey: Buffer;
}

/**
 * Car side of §4.4: tries each candidate's Kpersistent in the order given (most recently used
 * first) and compares cryptograms in constant time. No match → continue with AUTH1.
 */
export function matchFastCryptogram<C extends FastCandidate>(
  candidates: Iterable<C>,
  context: TransactionContext,
  readerLongTermPublicKey: Buffer,
  cryptogram: Uint8Array,
): { candidate: C; keys: FastKeys } | undefined {
  if (cryptogram.length !== CRYPTOGRAM_LENGTH) return undefined;
  for (const candidate of candidates) {
    const keys = deriveFastKeys(
      candidate.kpersistent,
      fastContext(context, readerLongTermPublicKey, candidate.endpointLongTermPublicKey),
    );
    if (constantTimeEqual(keys.cryptogram, cryptogram)) return { candidate, keys };
  }
  return undefined;
}

/** True when `code` may complete with a fast transaction (§4.4: never engine start). */
export function isFastTransactionCode(code: TransactionCode): boolean {
  return FAST_TRANSACTION_CODES.includes(code);
}

/** Reads a transaction code byte (AUTH0 P2). */
export function transactionCodeFromByte(byte: number): TransactionCode {
  return reverseLookup(TRANSACTION_CODE_BYTES, byte, 'transaction code');
}
