import { Inject, Injectable } from '@nestjs/common';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { ProblemException } from '../common/errors/problem.js';
import {
  importPublicKey,
  issueCertificate,
  loadCertificateAuthority,
  x509,
  type CertificateAuthority,
} from '../pki/certificate-issuer.js';

export interface IssuedVehicleCertificate {
  certificatePem: string;
  fingerprint: string;
  publicKeyPem: string;
}

const VEHICLE_CERTIFICATE_DAYS = 15 * 365;

/** Issues vehicle certificates (PROTOCOL.md §2: Vehicle OEM root → vehicle certificate). */
@Injectable()
export class VehicleCertificateIssuer {
  private authority?: Promise<CertificateAuthority>;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** Accepts the car's public key as SPKI PEM, or a PKCS#10 CSR (PEM) whose signature must verify. */
  async publicKeyFrom(input: { publicKeyPem?: string; csrPem?: string }): Promise<KeyObject> {
    let key: KeyObject;
    if (input.csrPem) {
      let csr: x509.Pkcs10CertificateRequest;
      try {
        csr = new x509.Pkcs10CertificateRequest(input.csrPem);
      } catch {
        throw new ProblemException('validation-failed', 'csr is not a PEM PKCS#10 certificate request');
      }
      if (!(await csr.verify().catch(() => false))) {
        throw new ProblemException('validation-failed', 'the CSR signature does not verify');
      }
      key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    } else {
      try {
        key = createPublicKey(input.publicKeyPem ?? '');
      } catch {
        throw new ProblemException('validation-failed', 'publicKey is not a PEM public key');
      }
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new ProblemException('validation-failed', 'the vehicle key must be an EC P-256 key');
    }
    return key;
  }

  async issue(vin: string, vehicleIdentifier: Buffer, publicKey: KeyObject): Promise<IssuedVehicleCertificate> {
    this.authority ??= loadCertificateAuthority(
      this.config.pki.vehicleOemRootCertPem,
      this.config.pki.vehicleOemRootKeyPem,
    );
    const certificate = await issueCertificate({
      profile: 'vehicle',
      commonName: vin,
      organization: 'Vehicle OEM',
      publicKey: await importPublicKey(publicKey),
      issuer: await this.authority,
      validDays: VEHICLE_CERTIFICATE_DAYS,
      vehicleIdentifier,
    });
    const certificatePem = certificate.toString('pem');
    return {
      certificatePem,
      fingerprint: new X509Certificate(certificatePem).fingerprint256.replace(/:/g, '').toLowerCase(),
      publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
  }
}
