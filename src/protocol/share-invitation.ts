import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ByteReader, checkLength, u64 } from './bytes.js';
import { decodeEntitlements } from './entitlements.js';
import { ProtocolError } from './errors.js';

/**
 * Sharing invitation (PROTOCOL.md §7 step 1) **[stand-in]**: what the owner's phone sends the
 * friend's phone through the Device OEM's store-and-forward mailbox (TIGRESS-style).
 *
 *   payload  = version(1)=1 ‖ vehicleIdentifier(8) ‖ vehiclePublicKey(65) ‖ ownerKeyId(8)
 *            ‖ notBefore(8, unix s) ‖ notAfter(8, unix s) ‖ nameLen(1) ‖ profileName
 *            ‖ entLen(1) ‖ entitlements TLV (§6)
 *   envelope = version(1)=1 ‖ pinRequired(1) ‖ iv(12) ‖ AES-256-GCM(secret, payload) ‖ tag(16)
 *   AAD      = "DK-INVITATION/1" ‖ pinRequired(1) ‖ PIN (6 ASCII digits, or nothing)
 *
 * The 32-byte secret travels only in the share link's fragment; the relay stores the envelope.
 * The optional PIN binds through the AAD: a wrong PIN fails the GCM tag, so the friend's phone
 * refuses after trying to decrypt; the relay learns only whether a PIN is required.
 */
export interface InvitationPayload {
  vehicleIdentifier: Buffer;
  vehiclePublicKey: Buffer;
  ownerKeyId: Buffer;
  /** Whole seconds. */
  notBefore: Date;
  notAfter: Date;
  /** Access profile name as the server lists it (`[A-Z0-9_]{1,32}`). */
  profileName: string;
  entitlements: Buffer;
}

const VERSION = 1;
const SECRET_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const MAX_ENTITLEMENTS = 64;
/** 9999-12-31T23:59:59Z: the last second an attestation's GeneralizedTime can carry. */
export const MAX_INVITATION_SECONDS = 253_402_300_799;
const PROFILE_NAME = /^[A-Z0-9_]{1,32}$/;
const PIN = /^\d{6}$/;
const AAD_LABEL = Buffer.from('DK-INVITATION/1', 'ascii');
const MAILBOX_ID = /^[A-Za-z0-9_-]{16,64}$/;

function seconds(date: Date, what: string): Buffer {
  const ms = date.getTime();
  if (!Number.isInteger(ms) || ms % 1000 !== 0 || ms < 0 || ms / 1000 > MAX_INVITATION_SECONDS) {
    throw new ProtocolError('out-of-range', `${what} must be whole seconds between 1970 and 9999`);
  }
  return u64(ms / 1000);
}

function readSeconds(reader: ByteReader, what: string): Date {
  const value = reader.u64(what);
  if (value > BigInt(MAX_INVITATION_SECONDS)) throw new ProtocolError('out-of-range', `${what} is after 9999`);
  return new Date(Number(value) * 1000);
}

function checkPayload(payload: InvitationPayload): void {
  checkLength(payload.vehicleIdentifier, 8, 'vehicle identifier');
  checkLength(payload.vehiclePublicKey, 65, 'vehicle public key');
  if (payload.vehiclePublicKey[0] !== 0x04) throw new ProtocolError('bad-point', 'vehicle key is not uncompressed');
  checkLength(payload.ownerKeyId, 8, 'owner key identifier');
  if (!PROFILE_NAME.test(payload.profileName)) throw new ProtocolError('malformed', 'bad access profile name');
  if (payload.entitlements.length === 0 || payload.entitlements.length > MAX_ENTITLEMENTS) {
    throw new ProtocolError('length', 'entitlements must be 1-64 bytes');
  }
  decodeEntitlements(payload.entitlements);
  if (payload.notAfter.getTime() <= payload.notBefore.getTime()) {
    throw new ProtocolError('malformed', 'notAfter must be after notBefore');
  }
}

export function encodeInvitationPayload(payload: InvitationPayload): Buffer {
  checkPayload(payload);
  const name = Buffer.from(payload.profileName, 'ascii');
  return Buffer.concat([
    Buffer.from([VERSION]),
    payload.vehicleIdentifier,
    payload.vehiclePublicKey,
    payload.ownerKeyId,
    seconds(payload.notBefore, 'notBefore'),
    seconds(payload.notAfter, 'notAfter'),
    Buffer.from([name.length]),
    name,
    Buffer.from([payload.entitlements.length]),
    payload.entitlements,
  ]);
}

export function decodeInvitationPayload(bytes: Uint8Array): InvitationPayload {
  const reader = new ByteReader(bytes);
  if (reader.u8('version') !== VERSION) throw new ProtocolError('unsupported', 'invitation version must be 1');
  const vehicleIdentifier = reader.bytes(8, 'vehicle identifier');
  const vehiclePublicKey = reader.bytes(65, 'vehicle public key');
  const ownerKeyId = reader.bytes(8, 'owner key identifier');
  const notBefore = readSeconds(reader, 'notBefore');
  const notAfter = readSeconds(reader, 'notAfter');
  const profileName = reader.bytes(reader.u8('name length'), 'profile name').toString('latin1');
  const entitlements = reader.bytes(reader.u8('entitlements length'), 'entitlements');
  reader.expectEnd('invitation');
  const payload = { vehicleIdentifier, vehiclePublicKey, ownerKeyId, notBefore, notAfter, profileName, entitlements };
  checkPayload(payload);
  return payload;
}

function aad(pinRequired: boolean, pin: string | undefined): Buffer {
  return Buffer.concat([AAD_LABEL, Buffer.from([pinRequired ? 1 : 0]), Buffer.from(pin ?? '', 'ascii')]);
}

function checkPin(pin: string | undefined): void {
  if (pin !== undefined && !PIN.test(pin)) throw new ProtocolError('malformed', 'the PIN must be 6 digits');
}

export interface SealedInvitation {
  /** 32 random bytes: the AES-256-GCM key; goes only into the link's fragment. */
  readonly secret: Buffer;
  /** What the relay stores. */
  readonly envelope: Buffer;
}

/** Seals a payload under a fresh random secret, binding the optional PIN (AAD). */
export function sealInvitation(
  payload: InvitationPayload,
  pin?: string,
  secret = randomBytes(SECRET_LENGTH),
): SealedInvitation {
  checkPin(pin);
  checkLength(secret, SECRET_LENGTH, 'invitation secret');
  const plaintext = encodeInvitationPayload(payload);
  const pinRequired = pin !== undefined;
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(aad(pinRequired, pin));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const envelope = Buffer.concat([Buffer.from([VERSION, pinRequired ? 1 : 0]), iv, body, cipher.getAuthTag()]);
  return { secret: Buffer.from(secret), envelope };
}

/** Whether opening the envelope needs a PIN (the only thing the relay can learn). */
export function invitationNeedsPin(envelope: Uint8Array): boolean {
  return parseEnvelope(envelope).pinRequired;
}

function parseEnvelope(envelope: Uint8Array) {
  const reader = new ByteReader(envelope);
  if (reader.u8('envelope version') !== VERSION) throw new ProtocolError('unsupported', 'envelope version must be 1');
  const flag = reader.u8('pin flag');
  if (flag > 1) throw new ProtocolError('malformed', 'pin flag must be 0 or 1');
  const iv = reader.bytes(IV_LENGTH, 'iv');
  if (reader.remaining < TAG_LENGTH + 1) throw new ProtocolError('truncated', 'envelope too short');
  const rest = reader.rest();
  return {
    pinRequired: flag === 1,
    iv,
    body: rest.subarray(0, rest.length - TAG_LENGTH),
    tag: rest.subarray(rest.length - TAG_LENGTH),
  };
}

/**
 * Opens an envelope: `bad-key` when a required PIN is missing (or one is given that is not
 * required), `bad-mac` when the secret or the PIN is wrong or the envelope was altered.
 */
export function openInvitation(envelope: Uint8Array, secret: Uint8Array, pin?: string): InvitationPayload {
  checkPin(pin);
  checkLength(secret, SECRET_LENGTH, 'invitation secret');
  const parsed = parseEnvelope(envelope);
  if (parsed.pinRequired !== (pin !== undefined)) {
    throw new ProtocolError('bad-key', parsed.pinRequired ? 'this invitation needs its PIN' : 'no PIN was set');
  }
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', secret, parsed.iv);
    decipher.setAAD(aad(parsed.pinRequired, pin));
    decipher.setAuthTag(parsed.tag);
    plaintext = Buffer.concat([decipher.update(parsed.body), decipher.final()]);
  } catch {
    throw new ProtocolError('bad-mac', 'the invitation does not open with this secret and PIN');
  }
  return decodeInvitationPayload(plaintext);
}

/** `<base>/share/<mailboxId>#<secret base64url>`: the fragment never reaches the relay. */
export function encodeShareLink(baseUrl: string, mailboxId: string, secret: Uint8Array): string {
  if (!MAILBOX_ID.test(mailboxId)) throw new ProtocolError('malformed', 'bad mailbox id');
  checkLength(secret, SECRET_LENGTH, 'invitation secret');
  return `${baseUrl.replace(/\/+$/, '')}/share/${mailboxId}#${Buffer.from(secret).toString('base64url')}`;
}

export function parseShareLink(link: string): { mailboxId: string; secret: Buffer } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new ProtocolError('malformed', 'the share link is not a URL');
  }
  if (url.protocol !== 'https:') throw new ProtocolError('malformed', 'the share link must be https');
  const match = /\/share\/([A-Za-z0-9_-]{16,64})$/.exec(url.pathname);
  if (!match) throw new ProtocolError('malformed', 'the share link has no mailbox id');
  const fragment = url.hash.slice(1);
  if (!/^[A-Za-z0-9_-]{43}$/.test(fragment)) throw new ProtocolError('malformed', 'the share link has no secret');
  const secret = Buffer.from(fragment, 'base64url');
  checkLength(secret, SECRET_LENGTH, 'invitation secret');
  return { mailboxId: match[1], secret };
}
