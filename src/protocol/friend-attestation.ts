import { checkLength } from './bytes.js';
import type { P256KeyPair, P256PublicKey } from './crypto/p256.js';
import { decodeEntitlements } from './entitlements.js';
import { ProtocolError } from './errors.js';
import { TLV, decodeTlvs, type Tlv } from './tlv.js';

/**
 * Friend attestation (PROTOCOL.md §7 step 3): the owner device's signed statement that a friend
 * endpoint key may open the car with these entitlements in this window.
 *
 *   FriendAttestation ::= SEQUENCE { version INTEGER 1, vehicleIdentifier OCTET STRING (8),
 *     endpointPublicKey OCTET STRING (65), entitlements OCTET STRING, notBefore GeneralizedTime,
 *     notAfter GeneralizedTime, ownerKeyId OCTET STRING (8) }
 *   SignedFriendAttestation ::= SEQUENCE { attestation FriendAttestation, signature OCTET STRING (64, r‖s) }  [stand-in]
 *
 * The owner endpoint key signs the DER of `attestation` (ECDSA P-256, SHA-256).
 */
export interface FriendAttestation {
  vehicleIdentifier: Buffer;
  endpointPublicKey: Buffer;
  entitlements: Buffer;
  /** Whole seconds (GeneralizedTime has no fraction here). */
  notBefore: Date;
  notAfter: Date;
  ownerKeyId: Buffer;
}

export interface SignedFriendAttestation {
  attestation: FriendAttestation;
  /** DER of the attestation: the bytes the signature covers. */
  signedBytes: Buffer;
  signature: Buffer;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OCTET_STRING = 0x04;
const GENERALIZED_TIME = 0x18;
const VERSION = 1;
const MAX_ENTITLEMENTS = 64;

function generalizedTime(date: Date): Buffer {
  if (date.getUTCMilliseconds() !== 0) throw new ProtocolError('malformed', 'attestation times are whole seconds');
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return Buffer.from(
    `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`,
    'ascii',
  );
}

function parseGeneralizedTime(value: Buffer): Date {
  const text = value.toString('ascii');
  const match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) throw new ProtocolError('malformed', 'attestation time is not YYYYMMDDHHMMSSZ');
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day ||
    date.getUTCHours() !== hour ||
    date.getUTCMinutes() !== minute ||
    date.getUTCSeconds() !== second
  ) {
    throw new ProtocolError('malformed', 'attestation time is not a valid date');
  }
  return date;
}

export function encodeFriendAttestation(attestation: FriendAttestation): Buffer {
  checkLength(attestation.vehicleIdentifier, 8, 'vehicle identifier');
  checkLength(attestation.endpointPublicKey, 65, 'endpoint public key');
  checkLength(attestation.ownerKeyId, 8, 'owner key identifier');
  if (attestation.entitlements.length > MAX_ENTITLEMENTS) throw new ProtocolError('length', 'entitlements too long');
  decodeEntitlements(attestation.entitlements);
  if (attestation.notAfter <= attestation.notBefore)
    throw new ProtocolError('malformed', 'notAfter must be after notBefore');
  return TLV(
    SEQUENCE,
    TLV(INTEGER, Buffer.from([VERSION])),
    TLV(OCTET_STRING, attestation.vehicleIdentifier),
    TLV(OCTET_STRING, attestation.endpointPublicKey),
    TLV(OCTET_STRING, attestation.entitlements),
    TLV(GENERALIZED_TIME, generalizedTime(attestation.notBefore)),
    TLV(GENERALIZED_TIME, generalizedTime(attestation.notAfter)),
    TLV(OCTET_STRING, attestation.ownerKeyId),
  );
}

function expect(field: Tlv | undefined, tag: number, what: string, length?: number): Buffer {
  if (!field || field.tag !== tag) throw new ProtocolError('unexpected-tag', `${what} missing or of the wrong type`);
  if (length !== undefined && field.value.length !== length) {
    throw new ProtocolError('length', `${what} must be ${length} bytes, got ${field.value.length}`);
  }
  return Buffer.from(field.value);
}

export function decodeFriendAttestation(der: Uint8Array): FriendAttestation {
  const [outer, ...rest] = decodeTlvs(der, { recursive: false });
  if (!outer || rest.length > 0) throw new ProtocolError('malformed', 'one attestation SEQUENCE expected');
  if (outer.tag !== SEQUENCE) throw new ProtocolError('unexpected-tag', 'attestation is not a SEQUENCE');
  const fields = decodeTlvs(outer.value, { recursive: false });
  if (fields.length !== 7) throw new ProtocolError('malformed', `attestation has ${fields.length} fields, expected 7`);
  const version = expect(fields[0], INTEGER, 'version');
  if (version.length !== 1 || version[0] !== VERSION)
    throw new ProtocolError('unsupported', 'attestation version must be 1');
  const attestation: FriendAttestation = {
    vehicleIdentifier: expect(fields[1], OCTET_STRING, 'vehicleIdentifier', 8),
    endpointPublicKey: expect(fields[2], OCTET_STRING, 'endpointPublicKey', 65),
    entitlements: expect(fields[3], OCTET_STRING, 'entitlements'),
    notBefore: parseGeneralizedTime(expect(fields[4], GENERALIZED_TIME, 'notBefore')),
    notAfter: parseGeneralizedTime(expect(fields[5], GENERALIZED_TIME, 'notAfter')),
    ownerKeyId: expect(fields[6], OCTET_STRING, 'ownerKeyId', 8),
  };
  if (attestation.entitlements.length > MAX_ENTITLEMENTS) throw new ProtocolError('length', 'entitlements too long');
  decodeEntitlements(attestation.entitlements);
  if (attestation.notAfter <= attestation.notBefore)
    throw new ProtocolError('malformed', 'notAfter must be after notBefore');
  return attestation;
}

/** Signs with the owner endpoint key (inside the owner's secure element). */
export function signFriendAttestation(attestation: FriendAttestation, ownerKey: P256KeyPair): Buffer {
  const signedBytes = encodeFriendAttestation(attestation);
  return TLV(SEQUENCE, signedBytes, TLV(OCTET_STRING, ownerKey.sign(signedBytes)));
}

export function decodeSignedFriendAttestation(der: Uint8Array): SignedFriendAttestation {
  const [outer, ...rest] = decodeTlvs(der, { recursive: false });
  if (!outer || rest.length > 0 || outer.tag !== SEQUENCE)
    throw new ProtocolError('malformed', 'not a signed attestation');
  const [body, signature, ...extra] = decodeTlvs(outer.value, { recursive: false });
  if (!body || !signature || extra.length > 0)
    throw new ProtocolError('malformed', 'signed attestation needs two fields');
  const signedBytes = TLV(body.tag, body.value);
  return {
    attestation: decodeFriendAttestation(signedBytes),
    signedBytes,
    signature: expect(signature, OCTET_STRING, 'signature', 64),
  };
}

/** True when the owner key signed exactly these attestation bytes. */
export function verifyFriendAttestation(signed: SignedFriendAttestation, ownerPublicKey: P256PublicKey): boolean {
  return ownerPublicKey.verify(signed.signedBytes, signed.signature);
}
