import { ByteReader, asBuffer, checkInteger, checkLength, u16 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { decodeTlv, tagHex, TLV } from './tlv.js';

/**
 * Mailboxes and the EXCHANGE grammar, PROTOCOL.md §4.7 **[stand-in]**. Each operation is a TLV
 * inside the constructed container `BA`: read `87(off(2) len(2))`, write `8A(off(2) data)`,
 * fill `95(off(2) len(2) byte)`, and a final `8C(00|01)` (00 last, 01 more of an atomic batch).
 * EXCHANGE operations address the private mailbox; the confidential mailbox reaches the car
 * only through the AUTH1 response (`4A`).
 */
export const MAILBOX_TAG = {
  CONTAINER: 0xba,
  READ: 0x87,
  WRITE: 0x8a,
  FILL: 0x95,
  BATCH: 0x8c,
} as const;

export const PRIVATE_MAILBOX_SIZE = 256;
export const CONFIDENTIAL_MAILBOX_SIZE = 128;

/** Private mailbox layout (§4.7). */
export const PRIVATE_MAILBOX_LAYOUT = {
  /** 8-byte key-list version, big-endian. */
  keyListVersion: { offset: 0x0000, length: 8 },
  /** count(1) ‖ up to 6 revoked key identifiers (8 B each). */
  revocationRelay: { offset: 0x0008, length: 1 + 6 * 8 },
  /** len(2) ‖ friend attestation (§7) or KTS receipt (§3.4). */
  attestation: { offset: 0x0040, length: PRIVATE_MAILBOX_SIZE - 0x0040 },
} as const;

/** Confidential mailbox layout (§4.7): the immobilizer token, opaque. */
export const CONFIDENTIAL_MAILBOX_LAYOUT = {
  immobilizerToken: { offset: 0x0000, length: 0x20 },
} as const;

export const REVOCATION_RELAY_MAX_KEYS = 6;
export const REVOCATION_RELAY_KEY_ID_LENGTH = 8;

export type MailboxOperation =
  | { readonly kind: 'read'; readonly offset: number; readonly length: number }
  | { readonly kind: 'write'; readonly offset: number; readonly data: Buffer }
  | { readonly kind: 'fill'; readonly offset: number; readonly length: number; readonly value: number };

export interface MailboxRequest {
  readonly operations: readonly MailboxOperation[];
  /** `8C 01`: more requests of the same atomic batch follow; commit only after the last. */
  readonly more: boolean;
}

export type MailboxStatus = 'ok' | 'out-of-bounds' | 'malformed';
export const MAILBOX_STATUS_CODES: Readonly<Record<MailboxStatus, number>> = {
  ok: 0x0000,
  'out-of-bounds': 0x0001,
  malformed: 0x0002,
};

export interface MailboxResponse {
  /** One entry per read operation, in order (empty unless the status is `ok`). */
  readonly reads: readonly Buffer[];
  readonly status: MailboxStatus;
}

const MAX_OFFSET = 0xffff;

function encodeOperation(operation: MailboxOperation): Buffer {
  checkInteger(operation.offset, 0, MAX_OFFSET, 'mailbox offset');
  switch (operation.kind) {
    case 'read':
      checkInteger(operation.length, 0, 0xffff, 'mailbox read length');
      return TLV(MAILBOX_TAG.READ, u16(operation.offset), u16(operation.length));
    case 'write':
      return TLV(MAILBOX_TAG.WRITE, u16(operation.offset), operation.data);
    case 'fill':
      checkInteger(operation.length, 0, 0xffff, 'mailbox fill length');
      checkInteger(operation.value, 0, 0xff, 'mailbox fill byte');
      return TLV(MAILBOX_TAG.FILL, u16(operation.offset), u16(operation.length), Buffer.from([operation.value]));
  }
}

/** EXCHANGE payload: `BA{ operations…, 8C(00|01) }` (encrypt it with `SecureChannel.wrapCommand`). */
export function encodeMailboxRequest(request: MailboxRequest): Buffer {
  const body = request.operations.map(encodeOperation);
  body.push(TLV(MAILBOX_TAG.BATCH, Buffer.from([request.more ? 0x01 : 0x00])));
  return TLV(MAILBOX_TAG.CONTAINER, ...body);
}

/** Parses an EXCHANGE payload; `8C` is optional (absent = last) but, if present, must come last. */
export function parseMailboxRequest(payload: Uint8Array): MailboxRequest {
  const container = decodeTlv(payload, { maxDepth: 2 });
  if (container.tag !== MAILBOX_TAG.CONTAINER || !container.children) {
    throw new ProtocolError('unexpected-tag', 'EXCHANGE payload is not a BA container');
  }
  const operations: MailboxOperation[] = [];
  let more = false;
  const children = container.children;
  for (let i = 0; i < children.length; i++) {
    const { tag, value } = children[i];
    const reader = new ByteReader(value);
    switch (tag) {
      case MAILBOX_TAG.READ: {
        checkLength(value, 4, 'mailbox read');
        operations.push({ kind: 'read', offset: reader.u16(), length: reader.u16() });
        break;
      }
      case MAILBOX_TAG.WRITE: {
        const offset = reader.u16('mailbox write offset');
        operations.push({ kind: 'write', offset, data: reader.rest() });
        break;
      }
      case MAILBOX_TAG.FILL: {
        checkLength(value, 5, 'mailbox fill');
        operations.push({ kind: 'fill', offset: reader.u16(), length: reader.u16(), value: reader.u8() });
        break;
      }
      case MAILBOX_TAG.BATCH: {
        if (i !== children.length - 1) throw new ProtocolError('malformed', '8C must be the last operation');
        checkLength(value, 1, 'batch marker');
        if (value[0] > 0x01) throw new ProtocolError('malformed', 'batch marker must be 00 or 01');
        more = value[0] === 0x01;
        break;
      }
      default:
        throw new ProtocolError('unexpected-tag', `unknown mailbox operation ${tagHex(tag)}`);
    }
  }
  return { operations, more };
}

/** Response payload: each read as `len(2) data`, then `00 02 status(2)`. */
export function encodeMailboxResponse(response: MailboxResponse): Buffer {
  const parts: Buffer[] = [];
  for (const read of response.reads) parts.push(u16(read.length), read);
  parts.push(u16(2), u16(MAILBOX_STATUS_CODES[response.status]));
  return Buffer.concat(parts);
}

/** The final length-prefixed item is the 2-byte status; every earlier one is a read. */
export function parseMailboxResponse(payload: Uint8Array): MailboxResponse {
  const reader = new ByteReader(payload);
  const items: Buffer[] = [];
  do {
    const length = reader.u16('mailbox response item length');
    items.push(reader.bytes(length, 'mailbox response item'));
  } while (!reader.atEnd);
  const statusItem = items.pop();
  if (!statusItem || statusItem.length !== 2) throw new ProtocolError('malformed', 'mailbox status missing');
  const code = statusItem.readUInt16BE(0);
  const status = (Object.keys(MAILBOX_STATUS_CODES) as MailboxStatus[]).find((s) => MAILBOX_STATUS_CODES[s] === code);
  if (!status) throw new ProtocolError('unsupported', `unknown mailbox status ${code}`);
  return { reads: items, status };
}

export interface MailboxApplyResult {
  /** The mailbox after the operations: the input itself when nothing was written, else a new copy. */
  readonly mailbox: Buffer;
  readonly reads: Buffer[];
  readonly status: MailboxStatus;
}

function operationSpan(operation: MailboxOperation): number {
  return operation.kind === 'write' ? operation.data.length : operation.length;
}

/**
 * Applies operations in order, all or nothing: when any operation falls outside the mailbox
 * the result is `out-of-bounds`, no read data and the mailbox unchanged. Reads see earlier
 * writes of the same request. Pure: the input is never modified.
 */
export function applyMailboxOperations(
  mailbox: Uint8Array,
  operations: readonly MailboxOperation[],
): MailboxApplyResult {
  const original = asBuffer(mailbox);
  for (const operation of operations) {
    if (operation.offset + operationSpan(operation) > original.length) {
      return { mailbox: original, reads: [], status: 'out-of-bounds' };
    }
  }
  let current = original;
  const reads: Buffer[] = [];
  for (const operation of operations) {
    if (operation.kind === 'read') {
      reads.push(Buffer.from(current.subarray(operation.offset, operation.offset + operation.length)));
      continue;
    }
    if (current === original) current = Buffer.from(original);
    if (operation.kind === 'write') current.set(operation.data, operation.offset);
    else current.fill(operation.value, operation.offset, operation.offset + operation.length);
  }
  return { mailbox: current, reads, status: 'ok' };
}

export interface MailboxExchangeResult extends MailboxApplyResult {
  /** Encoded response payload to encrypt with `SecureChannel.wrapResponse`. */
  readonly response: Buffer;
  /** The parsed request, absent when it was malformed. */
  readonly request?: MailboxRequest;
}

/**
 * Device side of one EXCHANGE: parse, apply, encode. A request that does not parse yields
 * status `malformed` (it is answered, not thrown). For a batch (`more`), keep `mailbox` as
 * the staged copy and commit it only after the request with `more = false`.
 */
export function processMailboxExchange(mailbox: Uint8Array, payload: Uint8Array): MailboxExchangeResult {
  let request: MailboxRequest;
  try {
    request = parseMailboxRequest(payload);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    const response = encodeMailboxResponse({ reads: [], status: 'malformed' });
    return { mailbox: asBuffer(mailbox), reads: [], status: 'malformed', response };
  }
  const result = applyMailboxOperations(mailbox, request.operations);
  const response = encodeMailboxResponse(result);
  return { mailbox: result.mailbox, reads: result.reads, status: result.status, request, response };
}

// ---------------------------------------------------------------------------------------------
// Private mailbox fields
// ---------------------------------------------------------------------------------------------

export function encodeKeyListVersion(version: bigint): Buffer {
  if (version < 0n || version > 0xffff_ffff_ffff_ffffn) throw new ProtocolError('out-of-range', 'key-list version');
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(version, 0);
  return out;
}

export function decodeKeyListVersion(bytes: Uint8Array): bigint {
  checkLength(bytes, 8, 'key-list version');
  return asBuffer(bytes).readBigUInt64BE(0);
}

/** Revocation relay (§4.7): `count ‖ keyId(8)×count`, zero-filled to 49 bytes. */
export function encodeRevocationRelay(keyIdentifiers: readonly Uint8Array[]): Buffer {
  if (keyIdentifiers.length > REVOCATION_RELAY_MAX_KEYS) {
    throw new ProtocolError('length', `at most ${REVOCATION_RELAY_MAX_KEYS} revocations fit the relay`);
  }
  const out = Buffer.alloc(PRIVATE_MAILBOX_LAYOUT.revocationRelay.length);
  out[0] = keyIdentifiers.length;
  keyIdentifiers.forEach((keyId, i) => {
    checkLength(keyId, REVOCATION_RELAY_KEY_ID_LENGTH, 'relayed key identifier');
    out.set(keyId, 1 + i * REVOCATION_RELAY_KEY_ID_LENGTH);
  });
  return out;
}

/** Accepts the whole 49-byte field or just `count ‖ ids`; bytes after the last id are ignored. */
export function decodeRevocationRelay(bytes: Uint8Array): Buffer[] {
  const reader = new ByteReader(bytes);
  const count = reader.u8('revocation count');
  if (count > REVOCATION_RELAY_MAX_KEYS) throw new ProtocolError('malformed', 'revocation count above 6');
  if (bytes.length > PRIVATE_MAILBOX_LAYOUT.revocationRelay.length) {
    throw new ProtocolError('length', 'revocation relay longer than its field');
  }
  const keyIds: Buffer[] = [];
  for (let i = 0; i < count; i++) keyIds.push(reader.bytes(REVOCATION_RELAY_KEY_ID_LENGTH, 'relayed key id'));
  return keyIds;
}

/** Attestation / receipt slot at 0x0040: `len(2) ‖ blob`, zero-filled to the end of the mailbox. */
export function encodeAttestationSlot(blob: Uint8Array): Buffer {
  const capacity = PRIVATE_MAILBOX_LAYOUT.attestation.length - 2;
  if (blob.length > capacity) throw new ProtocolError('length', `attestation longer than ${capacity} bytes`);
  const out = Buffer.alloc(PRIVATE_MAILBOX_LAYOUT.attestation.length);
  out.writeUInt16BE(blob.length, 0);
  out.set(blob, 2);
  return out;
}

/** The blob in the attestation slot, or undefined when the slot is empty (length 0). */
export function decodeAttestationSlot(bytes: Uint8Array): Buffer | undefined {
  const reader = new ByteReader(bytes);
  const length = reader.u16('attestation length');
  if (length === 0) return undefined;
  if (length > PRIVATE_MAILBOX_LAYOUT.attestation.length - 2) throw new ProtocolError('length', 'attestation too long');
  return reader.bytes(length, 'attestation');
}
