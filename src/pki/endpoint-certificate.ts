import { createHash } from 'node:crypto';
import type { KeyRole } from '../protocol/certificate-extensions.js';
import { importPublicPoint, issueCertificate, type CertificateAuthority } from './certificate-issuer.js';

export interface EndpointCertificateRequest {
  /** The Device OEM's Instance CA for this automaker (PROTOCOL.md §2). */
  instanceCa: CertificateAuthority;
  endpointPublicKey: Uint8Array;
  vehicleIdentifier: Uint8Array;
  role: KeyRole;
  entitlements?: Uint8Array;
  notBefore?: Date;
  notAfter?: Date;
}

/** Issues an endpoint certificate: CN = hex key identifier (§4.6), private extensions of §2. */
export async function issueEndpointCertificate(request: EndpointCertificateRequest): Promise<Buffer> {
  const keyIdentifier = createHash('sha256').update(request.endpointPublicKey).digest().subarray(0, 8).toString('hex');
  const certificate = await issueCertificate({
    profile: 'endpoint',
    commonName: keyIdentifier,
    publicKey: await importPublicPoint(request.endpointPublicKey),
    issuer: request.instanceCa,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    validDays: 3 * 365,
    vehicleIdentifier: request.vehicleIdentifier,
    keyRole: request.role,
    entitlements: request.entitlements,
  });
  return Buffer.from(certificate.rawData);
}
