import { ByteReader, checkLength, u64 } from './bytes.js';
import {
  decodeSignedFriendAttestation,
  encodeFriendAttestation,
  type SignedFriendAttestation,
} from './friend-attestation.js';
import { ProtocolError } from './errors.js';
import { TLV } from './tlv.js';
import { MAX_INVITATION_SECONDS } from './share-invitation.js';
import { PRIVATE_MAILBOX_LAYOUT } from './mailbox.js';

/**
 * The friend attestation as it sits in the private mailbox at 0x0040 (PROTOCOL.md §4.7, §7 step 5)
 * **[stand-in]**. The DER `SignedFriendAttestation` (~205 B) does not fit the 190 B the 256-byte
 * mailbox leaves after `len(2)`, so the slot carries its fields without the vehicle identifier
 * (the car supplies its own) and the car rebuilds the DER the owner signed — DER is canonical, so
 * the signature covers exactly the rebuilt bytes, and an attestation for another car fails:
 *
 *   slot blob = version(1)=0xF1 ‖ endpointPublicKey(65) ‖ notBefore(8) ‖ notAfter(8)
 *             ‖ ownerKeyId(8) ‖ signature(64) ‖ entitlements TLV (rest)
 */
export const FRIEND_SLOT_VERSION = 0xf1;
/** What `encodeAttestationSlot` accepts. */
export const FRIEND_SLOT_CAPACITY = PRIVATE_MAILBOX_LAYOUT.attestation.length - 2;

export function encodeFriendAttestationSlotBlob(signedDer: Uint8Array): Buffer {
  const { attestation, signature } = decodeSignedFriendAttestation(signedDer);
  const blob = Buffer.concat([
    Buffer.from([FRIEND_SLOT_VERSION]),
    attestation.endpointPublicKey,
    u64(attestation.notBefore.getTime() / 1000),
    u64(attestation.notAfter.getTime() / 1000),
    attestation.ownerKeyId,
    signature,
    attestation.entitlements,
  ]);
  if (blob.length > FRIEND_SLOT_CAPACITY) throw new ProtocolError('length', 'attestation does not fit the mailbox');
  return blob;
}

function readSeconds(reader: ByteReader, what: string): Date {
  const value = reader.u64(what);
  if (value > BigInt(MAX_INVITATION_SECONDS)) throw new ProtocolError('out-of-range', `${what} is after 9999`);
  return new Date(Number(value) * 1000);
}

/** Rebuilds the owner-signed attestation for `vehicleIdentifier` (the reading car's own). */
export function decodeFriendAttestationSlotBlob(
  blob: Uint8Array,
  vehicleIdentifier: Uint8Array,
): SignedFriendAttestation {
  checkLength(vehicleIdentifier, 8, 'vehicle identifier');
  if (blob.length > FRIEND_SLOT_CAPACITY) throw new ProtocolError('length', 'attestation slot blob too long');
  const reader = new ByteReader(blob);
  if (reader.u8('slot version') !== FRIEND_SLOT_VERSION) {
    throw new ProtocolError('unsupported', 'not a friend attestation slot');
  }
  const endpointPublicKey = reader.bytes(65, 'endpoint public key');
  const notBefore = readSeconds(reader, 'notBefore');
  const notAfter = readSeconds(reader, 'notAfter');
  const ownerKeyId = reader.bytes(8, 'owner key identifier');
  const signature = reader.bytes(64, 'signature');
  const entitlements = reader.rest();
  const signedBytes = encodeFriendAttestation({
    vehicleIdentifier: Buffer.from(vehicleIdentifier),
    endpointPublicKey,
    entitlements,
    notBefore,
    notAfter,
    ownerKeyId,
  });
  return decodeSignedFriendAttestation(TLV(0x30, signedBytes, TLV(0x04, signature)));
}
