import { ProtocolError } from './errors.js';
import { decodeTlvs } from './tlv.js';

/**
 * Private certificate extensions of PROTOCOL.md §2 [stand-in]: they live under the arc
 * 2.25.<project UUID as decimal>, which needs no registration (ITU-T X.667).
 */
export const PROJECT_OID_ARC = '2.25.164986476451394641354628871324004387351';

export const CERTIFICATE_EXTENSION_OIDS = {
  /** OCTET STRING (8 bytes). */
  vehicleIdentifier: `${PROJECT_OID_ARC}.1`,
  /** ENUMERATED owner=1 friend=2, critical. */
  keyRole: `${PROJECT_OID_ARC}.2`,
  /** OCTET STRING holding the entitlements TLV of §6. */
  entitlements: `${PROJECT_OID_ARC}.3`,
} as const;

export const KEY_ROLE_CODES = { owner: 1, friend: 2 } as const;
export type KeyRole = keyof typeof KEY_ROLE_CODES;

/** DER encoding of an OBJECT IDENTIFIER's contents; arcs as BigInt since the UUID arc is 128 bits. */
export function encodeOidContents(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => BigInt(arc));
  if (arcs.length < 2) throw new ProtocolError('malformed', 'an OID needs at least two arcs');
  const values = [arcs[0] * 40n + arcs[1], ...arcs.slice(2)];
  const out: number[] = [];
  for (const value of values) {
    const groups: number[] = [Number(value & 0x7fn)];
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) groups.unshift(Number(rest & 0x7fn) | 0x80);
    out.push(...groups);
  }
  return Buffer.from(out);
}

export interface CertificateExtension {
  /** OID contents (DER, without tag and length). */
  oid: Buffer;
  critical: boolean;
  /** The extnValue OCTET STRING's contents. */
  value: Buffer;
}

const SEQUENCE = 0x30;
const OID = 0x06;
const BOOLEAN = 0x01;
const OCTET_STRING = 0x04;
const EXPLICIT_EXTENSIONS = 0xa3;

/**
 * Reads the extensions of an X.509 certificate (RFC 5280 §4.1) with the project's own DER
 * walker: X.509 libraries truncate the 128-bit arc of our private OIDs.
 */
export function readCertificateExtensions(certificateDer: Uint8Array): CertificateExtension[] {
  const [certificate] = decodeTlvs(certificateDer, { recursive: false });
  if (certificate?.tag !== SEQUENCE) throw new ProtocolError('malformed', 'not a certificate');
  const [tbs] = decodeTlvs(certificate.value, { recursive: false });
  if (tbs?.tag !== SEQUENCE) throw new ProtocolError('malformed', 'no TBSCertificate');
  const extensionsField = decodeTlvs(tbs.value, { recursive: false }).find(
    (field) => field.tag === EXPLICIT_EXTENSIONS,
  );
  if (!extensionsField) return [];
  const [list] = decodeTlvs(extensionsField.value, { recursive: false });
  if (list?.tag !== SEQUENCE) throw new ProtocolError('malformed', 'extensions are not a SEQUENCE');
  return decodeTlvs(list.value, { recursive: false }).map((extension) => {
    if (extension.tag !== SEQUENCE) throw new ProtocolError('malformed', 'an extension is not a SEQUENCE');
    const parts = decodeTlvs(extension.value, { recursive: false });
    const oid = parts[0];
    const critical = parts.length === 3 && parts[1].tag === BOOLEAN && parts[1].value[0] === 0xff;
    const value = parts[parts.length - 1];
    if (oid?.tag !== OID || value?.tag !== OCTET_STRING || parts.length > 3) {
      throw new ProtocolError('malformed', 'an extension is malformed');
    }
    return { oid: oid.value, critical, value: value.value };
  });
}

export interface EndpointCertificateFields {
  vehicleIdentifier: Buffer | null;
  role: KeyRole | null;
  entitlements: Buffer | null;
}

const OID_CONTENTS = {
  vehicleIdentifier: encodeOidContents(CERTIFICATE_EXTENSION_OIDS.vehicleIdentifier),
  keyRole: encodeOidContents(CERTIFICATE_EXTENSION_OIDS.keyRole),
  entitlements: encodeOidContents(CERTIFICATE_EXTENSION_OIDS.entitlements),
};

function innerOctetString(value: Buffer | undefined): Buffer | null {
  if (!value) return null;
  const [inner] = decodeTlvs(value, { recursive: false });
  return inner?.tag === OCTET_STRING ? Buffer.from(inner.value) : null;
}

/** The private extensions of §2 in an endpoint certificate. */
export function readEndpointCertificateFields(certificateDer: Uint8Array): EndpointCertificateFields {
  const extensions = readCertificateExtensions(certificateDer);
  const find = (oid: Buffer) => extensions.find((extension) => extension.oid.equals(oid))?.value;
  const roleValue = find(OID_CONTENTS.keyRole);
  let role: KeyRole | null = null;
  if (roleValue) {
    const [enumerated] = decodeTlvs(roleValue, { recursive: false });
    const code = enumerated?.tag === 0x0a && enumerated.value.length === 1 ? enumerated.value[0] : -1;
    role = (Object.keys(KEY_ROLE_CODES) as KeyRole[]).find((name) => KEY_ROLE_CODES[name] === code) ?? null;
  }
  return {
    vehicleIdentifier: innerOctetString(find(OID_CONTENTS.vehicleIdentifier)),
    role,
    entitlements: innerOctetString(find(OID_CONTENTS.entitlements)),
  };
}
