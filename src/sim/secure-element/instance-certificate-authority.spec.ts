import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority, x509 } from '../../pki/certificate-issuer.js';
import { createPkiSet, type PkiSet } from '../../pki/dev-pki.js';
import { issueEndpointCertificate } from '../../pki/endpoint-certificate.js';
import { EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import { readCertificateExtensions } from '../../protocol/certificate-extensions.js';
import { ENDPOINT_CERTIFICATE_VALIDITY_MS, InstanceCertificateAuthority } from './instance-certificate-authority.js';
import { SecureElementError } from './secure-element-error.js';

function point(): Buffer {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.from(spki.subarray(spki.length - 65));
}

describe('InstanceCertificateAuthority (the Instance CA a phone holds, §2)', () => {
  let set: PkiSet;
  let ca: InstanceCertificateAuthority;

  beforeAll(async () => {
    set = await createPkiSet();
    ca = new InstanceCertificateAuthority({
      certificatePem: set.instanceCaCert,
      privateKeyPem: set.instanceCaKey,
      deviceOemCrossCertificatePem: set.deviceOemCaCrossCert,
    });
  });

  it('issues, synchronously, endpoint certificates the chain verifier accepts, with the §2 extensions', () => {
    const key = point();
    const now = new Date('2030-06-01T00:00:00Z');
    const chain = ca.issueEndpointChain({
      endpointPublicKey: key,
      vehicleIdentifier: Buffer.from('0102030405060708', 'hex'),
      role: 'owner',
      entitlements: Buffer.from('01013f', 'hex'),
      now,
    });
    const verified = new EndpointChainVerifier(set.vehicleOemRootCert).verify([...chain], now);
    expect(verified).toMatchObject({ vehicleIdentifier: '0102030405060708', role: 'owner' });
    expect(verified.publicKeyPoint).toEqual(key);
    expect(verified.entitlements?.toString('hex')).toBe('01013f');
    const certificate = new X509Certificate(chain[0]);
    expect(certificate.subject).toBe(`CN=${verified.keyIdentifier}`);
    expect(new Date(certificate.validTo).getTime() - new Date(certificate.validFrom).getTime()).toBe(
      ENDPOINT_CERTIFICATE_VALIDITY_MS,
    );
    // Also readable by a general X.509 library, with the constraints of the project's issuer.
    const parsed = new x509.X509Certificate(chain[0]);
    expect(parsed.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(parsed.getExtension(x509.KeyUsagesExtension)?.usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
    );
  });

  it('lays the extensions out as src/pki/endpoint-certificate.ts does', async () => {
    const key = point();
    const fields = { endpointPublicKey: key, vehicleIdentifier: Buffer.alloc(8, 1), role: 'owner' as const };
    const ours = readCertificateExtensions(ca.issueEndpointCertificate(fields));
    const reference = readCertificateExtensions(
      await issueEndpointCertificate({
        instanceCa: await loadCertificateAuthority(set.instanceCaCert, set.instanceCaKey),
        ...fields,
      }),
    );
    expect(ours.map((e) => [e.oid.toString('hex'), e.critical])).toEqual(
      reference.map((e) => [e.oid.toString('hex'), e.critical]),
    );
    expect(ours.map((e) => e.value)).toEqual(reference.map((e) => e.value));
  });

  it('refuses a key that does not match the Instance CA certificate', () => {
    expect(
      () =>
        new InstanceCertificateAuthority({
          certificatePem: set.instanceCaCert,
          privateKeyPem: set.deviceOemCaKey,
          deviceOemCrossCertificatePem: set.deviceOemCaCrossCert,
        }),
    ).toThrow(SecureElementError);
  });
});
