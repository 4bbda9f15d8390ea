import { ByteReader, checkLength, concatBytes, u64 } from './bytes.js';
import { sha256 } from './crypto/kdf.js';

/** Domain separator of the KTS registration receipt (PROTOCOL.md §3.4) [stand-in]. */
export const KTS_RECEIPT_LABEL = Buffer.from('KTS-REG', 'ascii');

export interface KtsReceiptFields {
  vehicleIdentifier: Uint8Array;
  keyIdentifier: Uint8Array;
  endpointCertificateDer: Uint8Array;
  issuedAtMs: number;
}

/** The bytes the KTS key signs: `"KTS-REG" ‖ vehicleIdentifier(8) ‖ keyId(8) ‖ SHA-256(cert DER) ‖ unix-ms(8)`. */
export function ktsReceiptMessage(fields: KtsReceiptFields): Buffer {
  const { endpointCertificateDer, ...rest } = fields;
  return ktsReceiptMessageFromDigest({ ...rest, endpointCertificateDigest: sha256(endpointCertificateDer) });
}

/** The same message from the certificate's SHA-256, which is all a car keeps after pairing (§3.4). */
export function ktsReceiptMessageFromDigest(
  fields: Omit<KtsReceiptFields, 'endpointCertificateDer'> & { endpointCertificateDigest: Uint8Array },
): Buffer {
  checkLength(fields.vehicleIdentifier, 8, 'vehicle identifier');
  checkLength(fields.keyIdentifier, 8, 'key identifier');
  checkLength(fields.endpointCertificateDigest, 32, 'certificate digest');
  return concatBytes(
    KTS_RECEIPT_LABEL,
    fields.vehicleIdentifier,
    fields.keyIdentifier,
    fields.endpointCertificateDigest,
    u64(fields.issuedAtMs),
  );
}

/** A receipt as it travels to the car (private mailbox slot): unix-ms(8) ‖ signature r‖s (64). */
export interface KtsReceipt {
  issuedAtMs: number;
  signature: Buffer;
}

export const KTS_RECEIPT_LENGTH = 72;

export function encodeKtsReceipt(receipt: KtsReceipt): Buffer {
  checkLength(receipt.signature, 64, 'KTS signature');
  return concatBytes(u64(receipt.issuedAtMs), receipt.signature);
}

export function decodeKtsReceipt(bytes: Uint8Array): KtsReceipt {
  const reader = new ByteReader(bytes);
  const issuedAt = reader.u64();
  const signature = Buffer.from(reader.bytes(64));
  reader.expectEnd();
  return { issuedAtMs: Number(issuedAt), signature };
}
