import { createHash, createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { checkLength } from '../../protocol/bytes.js';
import {
  CERTIFICATE_EXTENSION_OIDS,
  encodeOidContents,
  KEY_ROLE_CODES,
  readCertificateExtensions,
  type KeyRole,
} from '../../protocol/certificate-extensions.js';
import { checkPublicPoint } from '../../protocol/crypto/p256.js';
import { VEHICLE_IDENTIFIER_LENGTH } from '../../protocol/identifiers.js';
import type { EndpointChainDer } from '../../protocol/pairing.js';
import { decodeTlvs, TLV } from '../../protocol/tlv.js';
import { SecureElementError } from './secure-element-error.js';

/** Endpoint certificates live three years, as those of `src/pki/endpoint-certificate.ts`. */
export const ENDPOINT_CERTIFICATE_VALIDITY_MS = 3 * 365 * 86_400_000;
/** Backdating against clock skew, as the project's issuer does. */
const BACKDATE_MS = 60_000;

// DER building blocks (X.690) for the one certificate profile this CA issues.
const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
const BOOLEAN = 0x01;
const ENUMERATED = 0x0a;
const PRINTABLE_STRING = 0x13;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;
const EXPLICIT_0 = 0xa0;
const EXPLICIT_3 = 0xa3;
const TRUE = Buffer.from([0xff]);

const oid = (dotted: string): Buffer => TLV(OID, encodeOidContents(dotted));
const ECDSA_WITH_SHA256 = TLV(SEQUENCE, oid('1.2.840.10045.4.3.2'));
const EC_P256_ALGORITHM = TLV(SEQUENCE, oid('1.2.840.10045.2.1'), oid('1.2.840.10045.3.1.7'));
const COMMON_NAME = oid('2.5.4.3');
const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';

function extension(dotted: string, critical: boolean, value: Buffer): Buffer {
  return TLV(SEQUENCE, oid(dotted), ...(critical ? [TLV(BOOLEAN, TRUE)] : []), TLV(OCTET_STRING, value));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const year = date.getUTCFullYear();
  return year < 2050 ? TLV(UTC_TIME, Buffer.from(`${iso.slice(2)}Z`)) : TLV(GENERALIZED_TIME, Buffer.from(`${iso}Z`));
}

function positiveSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive, no leading zero byte
  return TLV(INTEGER, serial);
}

export interface InstanceCaMaterial {
  /** The Instance CA certificate (PEM), issued by the Device OEM CA. */
  readonly certificatePem: string;
  /** Its PKCS#8 private key (PEM); it stays inside the authority object. */
  readonly privateKeyPem: string;
  /** The Device OEM CA cross-signed by the Vehicle OEM root, the third certificate of the chain (§2). */
  readonly deviceOemCrossCertificatePem: string;
}

export interface EndpointCertificateFields {
  /** 65-byte uncompressed point generated inside the SE. */
  readonly endpointPublicKey: Uint8Array;
  readonly vehicleIdentifier: Uint8Array;
  readonly role: KeyRole;
  /** Encoded entitlements (§6). */
  readonly entitlements?: Uint8Array;
  readonly now?: Date;
}

/**
 * The Device OEM's Instance CA for one automaker, as the phone's secure element holds it
 * (PROTOCOL.md §2, §3.4). It certifies endpoint keys synchronously inside the applet, in the
 * same profile as `src/pki/endpoint-certificate.ts` (CN = hex key identifier, the private
 * extensions of §2), because an APDU handler cannot wait on WebCrypto.
 */
export class InstanceCertificateAuthority {
  /** `[Instance CA, Device OEM CA cross-certificate]`, DER: what follows the endpoint certificate. */
  readonly chainTail: readonly [Buffer, Buffer];
  readonly #key: KeyObject;
  readonly #issuerName: Buffer;
  readonly #authorityKeyIdentifier: Buffer;

  constructor(material: InstanceCaMaterial) {
    const instance = new X509Certificate(material.certificatePem);
    const cross = new X509Certificate(material.deviceOemCrossCertificatePem);
    this.#key = createPrivateKey(material.privateKeyPem);
    if (!instance.ca || !instance.checkPrivateKey(this.#key)) {
      throw new SecureElementError('bad-argument', 'the Instance CA key does not match a CA certificate');
    }
    this.chainTail = [Buffer.from(instance.raw), Buffer.from(cross.raw)];
    this.#issuerName = subjectNameOf(instance.raw);
    const ski = readCertificateExtensions(instance.raw).find((ext) =>
      ext.oid.equals(encodeOidContents(OID_SUBJECT_KEY_IDENTIFIER)),
    );
    const keyIdentifier = ski ? decodeTlvs(ski.value, { recursive: false })[0]?.value : undefined;
    if (!keyIdentifier) throw new SecureElementError('bad-argument', 'the Instance CA has no subject key identifier');
    this.#authorityKeyIdentifier = Buffer.from(keyIdentifier);
  }

  /** Issues the endpoint certificate (DER) and returns the whole chain of §2. */
  issueEndpointChain(fields: EndpointCertificateFields): EndpointChainDer {
    return [this.issueEndpointCertificate(fields), ...this.chainTail];
  }

  issueEndpointCertificate(fields: EndpointCertificateFields): Buffer {
    checkPublicPoint(fields.endpointPublicKey, 'endpoint public key');
    checkLength(fields.vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
    const point = Buffer.from(fields.endpointPublicKey);
    const keyId = createHash('sha256').update(point).digest().subarray(0, 8).toString('hex');
    const notBefore = new Date((fields.now ?? new Date()).getTime() - BACKDATE_MS);
    const notAfter = new Date(notBefore.getTime() + ENDPOINT_CERTIFICATE_VALIDITY_MS);
    const extensions = [
      extension('2.5.29.19', true, TLV(SEQUENCE)), // basic constraints: not a CA
      extension('2.5.29.15', true, TLV(BIT_STRING, Buffer.from([0x03, 0x88]))), // digitalSignature, keyAgreement
      extension(CERTIFICATE_EXTENSION_OIDS.vehicleIdentifier, false, TLV(OCTET_STRING, fields.vehicleIdentifier)),
      extension(CERTIFICATE_EXTENSION_OIDS.keyRole, true, TLV(ENUMERATED, Buffer.from([KEY_ROLE_CODES[fields.role]]))),
      ...(fields.entitlements
        ? [extension(CERTIFICATE_EXTENSION_OIDS.entitlements, false, TLV(OCTET_STRING, fields.entitlements))]
        : []),
      extension(
        OID_SUBJECT_KEY_IDENTIFIER,
        false,
        TLV(OCTET_STRING, createHash('sha1').update(point).digest()), // RFC 5280 §4.2.1.2 method 1
      ),
      extension('2.5.29.35', false, TLV(SEQUENCE, TLV(0x80, this.#authorityKeyIdentifier))),
    ];
    const tbs = TLV(
      SEQUENCE,
      TLV(EXPLICIT_0, TLV(INTEGER, Buffer.from([0x02]))), // v3
      positiveSerial(),
      ECDSA_WITH_SHA256,
      this.#issuerName,
      TLV(SEQUENCE, time(notBefore), time(notAfter)),
      TLV(SEQUENCE, TLV(SET, TLV(SEQUENCE, COMMON_NAME, TLV(PRINTABLE_STRING, Buffer.from(keyId, 'ascii'))))),
      TLV(SEQUENCE, EC_P256_ALGORITHM, TLV(BIT_STRING, Buffer.from([0x00]), point)),
      TLV(EXPLICIT_3, TLV(SEQUENCE, ...extensions)),
    );
    const signature = sign('sha256', tbs, this.#key); // DER ECDSA-Sig-Value
    return TLV(SEQUENCE, tbs, ECDSA_WITH_SHA256, TLV(BIT_STRING, Buffer.from([0x00]), signature));
  }
}

/** The subject Name of a certificate, DER, to become the issuer of what this CA signs. */
function subjectNameOf(certificateDer: Uint8Array): Buffer {
  const [certificate] = decodeTlvs(certificateDer, { recursive: false });
  const [tbs] = decodeTlvs(certificate.value, { recursive: false });
  const fields = decodeTlvs(tbs.value, { recursive: false });
  // version [0], serial, signature algorithm, issuer, validity, subject
  const offset = fields[0]?.tag === EXPLICIT_0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (subject?.tag !== SEQUENCE) throw new SecureElementError('bad-argument', 'the Instance CA has no subject');
  return TLV(SEQUENCE, subject.value);
}
