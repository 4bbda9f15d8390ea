import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, sign, webcrypto } from 'node:crypto';
import {
  CERTIFICATE_EXTENSION_OIDS,
  KEY_ROLE_CODES,
  encodeOidContents,
  type KeyRole,
} from '../protocol/certificate-extensions.js';
import { TLV, decodeTlvs } from '../protocol/tlv.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;

/**
 * What a certificate is for. Each profile fixes basic constraints, key usage and extended key
 * usage in one place (PROTOCOL.md §2), so no caller assembles extensions by hand.
 */
export type CertificateProfile = 'root-ca' | 'intermediate-ca' | 'tls-server' | 'tls-client' | 'vehicle' | 'endpoint';

export interface CertificateAuthority {
  certificate: x509.X509Certificate;
  privateKey: CryptoKey;
}

export interface IssueCertificateOptions {
  profile: CertificateProfile;
  commonName: string;
  organization?: string;
  publicKey: CryptoKey;
  /** The signing CA; omit together with `selfSignKey` for a self-signed root. */
  issuer?: CertificateAuthority;
  selfSignKey?: CryptoKey;
  notBefore?: Date;
  notAfter?: Date;
  validDays?: number;
  pathLength?: number;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Vehicle or endpoint: the 8-byte vehicle identifier (§2 `.1`). */
  vehicleIdentifier?: Uint8Array;
  /** Endpoint: key role (§2 `.2`). */
  keyRole?: KeyRole;
  /** Endpoint: entitlements TLV (§2 `.3`). */
  entitlements?: Uint8Array;
}

export function generateEcKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

function octetString(value: Uint8Array): Uint8Array {
  if (value.length > 127) throw new RangeError('extension value too long for short-form DER');
  return Uint8Array.from([0x04, value.length, ...value]);
}

function profileExtensions(options: IssueCertificateOptions): x509.Extension[] {
  const { profile } = options;
  const ku = x509.KeyUsageFlags;
  const extensions: x509.Extension[] = [];
  switch (profile) {
    case 'root-ca':
    case 'intermediate-ca':
      extensions.push(new x509.BasicConstraintsExtension(true, options.pathLength, true));
      extensions.push(new x509.KeyUsagesExtension(ku.keyCertSign | ku.cRLSign | ku.digitalSignature, true));
      break;
    case 'tls-server':
      extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
      extensions.push(new x509.KeyUsagesExtension(ku.digitalSignature | ku.keyAgreement, true));
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false));
      break;
    case 'tls-client':
      extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
      extensions.push(new x509.KeyUsagesExtension(ku.digitalSignature | ku.keyAgreement, true));
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false));
      break;
    case 'vehicle':
      // The vehicle key signs reader signatures (§4.3) and authenticates the car's TLS calls.
      extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
      extensions.push(new x509.KeyUsagesExtension(ku.digitalSignature | ku.keyAgreement, true));
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false));
      break;
    case 'endpoint':
      extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
      extensions.push(new x509.KeyUsagesExtension(ku.digitalSignature | ku.keyAgreement, true));
      break;
  }
  const names: x509.JsonGeneralNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (options.vehicleIdentifier) {
    extensions.push(
      new x509.Extension(PLACEHOLDER_OIDS.vehicleIdentifier, false, octetString(options.vehicleIdentifier)),
    );
  }
  if (options.keyRole) {
    const enumerated = Uint8Array.from([0x0a, 0x01, KEY_ROLE_CODES[options.keyRole]]);
    extensions.push(new x509.Extension(PLACEHOLDER_OIDS.keyRole, true, enumerated));
  }
  if (options.entitlements) {
    extensions.push(new x509.Extension(PLACEHOLDER_OIDS.entitlements, false, octetString(options.entitlements)));
  }
  return extensions;
}

/**
 * @peculiar/x509 cannot encode OID arcs beyond 2^53, and ours is a 128-bit UUID arc (§2). The
 * certificate is generated with short placeholder OIDs, then the TBSCertificate is rewritten
 * with the real ones and signed again.
 */
const PLACEHOLDER_OIDS = {
  vehicleIdentifier: '2.999.4242.1',
  keyRole: '2.999.4242.2',
  entitlements: '2.999.4242.3',
} as const;

const OID_REPLACEMENTS: Array<[Buffer, Buffer]> = (
  Object.keys(PLACEHOLDER_OIDS) as Array<keyof typeof PLACEHOLDER_OIDS>
).map((name) => [encodeOidContents(PLACEHOLDER_OIDS[name]), encodeOidContents(CERTIFICATE_EXTENSION_OIDS[name])]);

function replacePlaceholderOids(certificateDer: Buffer, signingKey: CryptoKey): Buffer {
  const [certificate] = decodeTlvs(certificateDer, { recursive: false });
  const [tbs, signatureAlgorithm] = decodeTlvs(certificate.value, { recursive: false });
  const fields = decodeTlvs(tbs.value, { recursive: false }).map((field) => {
    if (field.tag !== 0xa3) return TLV(field.tag, field.value);
    const [list] = decodeTlvs(field.value, { recursive: false });
    const extensions = decodeTlvs(list.value, { recursive: false }).map((extension) => {
      const parts = decodeTlvs(extension.value, { recursive: false }).map((part) => {
        const replacement =
          part.tag === 0x06 && OID_REPLACEMENTS.find(([placeholder]) => placeholder.equals(part.value));
        return TLV(part.tag, replacement ? replacement[1] : part.value);
      });
      return TLV(0x30, ...parts);
    });
    return TLV(0xa3, TLV(0x30, ...extensions));
  });
  const newTbs = TLV(0x30, ...fields);
  const signature = sign('sha256', newTbs, KeyObject.from(signingKey));
  return TLV(
    0x30,
    newTbs,
    TLV(signatureAlgorithm.tag, signatureAlgorithm.value),
    TLV(0x03, Buffer.from([0]), signature),
  );
}

function distinguishedName(commonName: string, organization?: string): string {
  const escape = (value: string) => value.replace(/([,+"\\<>;=])/g, '\\$1');
  return organization ? `CN=${escape(commonName)}, O=${escape(organization)}` : `CN=${escape(commonName)}`;
}

/** Issues one certificate of the given profile, signed by `issuer` (or self-signed by `selfSignKey`). */
export async function issueCertificate(options: IssueCertificateOptions): Promise<x509.X509Certificate> {
  const signingKey = options.issuer?.privateKey ?? options.selfSignKey;
  if (!signingKey) throw new TypeError('issueCertificate needs an issuer or a selfSignKey');
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + (options.validDays ?? 365) * DAY_MS);
  const extensions = profileExtensions(options);
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(options.publicKey));
  if (options.issuer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.issuer.certificate));
  }
  const subject = distinguishedName(options.commonName, options.organization);
  const generated = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: options.issuer ? options.issuer.certificate.subject : subject,
    notBefore,
    notAfter,
    publicKey: options.publicKey,
    signingKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions,
  });
  if (!options.vehicleIdentifier && !options.keyRole && !options.entitlements) return generated;
  return new x509.X509Certificate(replacePlaceholderOids(Buffer.from(generated.rawData), signingKey));
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive INTEGER
  bytes[0] |= 0x01; // no leading zero byte
  return Buffer.from(bytes).toString('hex');
}

export type { CryptoKey, CryptoKeyPair };

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('spki', key);
  return x509.PemConverter.encode(der, 'PUBLIC KEY');
}

/** Imports a PKCS#8 P-256 private key for signing certificates. */
export function importSigningKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
}

/** Imports a P-256 public key (node:crypto KeyObject) so it can be certified. */
export function importPublicKey(key: KeyObject): Promise<CryptoKey> {
  const spki = key.export({ type: 'spki', format: 'der' });
  return webcrypto.subtle.importKey('spki', spki, EC_P256, true, ['verify']);
}

/** Imports an uncompressed P-256 point (65 bytes), e.g. an endpoint key generated inside a secure element. */
export function importPublicPoint(point: Uint8Array): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('raw', point, EC_P256, true, ['verify']);
}

export async function loadCertificateAuthority(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  return { certificate: new x509.X509Certificate(certPem), privateKey: await importSigningKeyPem(keyPem) };
}

export { x509 };
