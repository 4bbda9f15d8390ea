import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority, type CertificateAuthority } from './certificate-issuer.js';
import { createPkiSet, type PkiSet } from './dev-pki.js';
import { issueEndpointCertificate } from './endpoint-certificate.js';
import { ChainVerificationError, EndpointChainVerifier } from './endpoint-chain.js';

function point(): Buffer {
  const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  return Buffer.from(spki.subarray(spki.length - 65));
}

const der = (pem: string) => Buffer.from(new X509Certificate(pem).raw);

describe('EndpointChainVerifier', () => {
  let pki: PkiSet;
  let instance: CertificateAuthority;
  let chainTail: Buffer[];
  const vehicleIdentifier = Buffer.from('0102030405060708', 'hex');

  beforeAll(async () => {
    pki = await createPkiSet();
    instance = await loadCertificateAuthority(pki.instanceCaCert, pki.instanceCaKey);
    chainTail = [der(pki.instanceCaCert), der(pki.deviceOemCaCrossCert)];
  });

  it('accepts endpoint → Instance CA → cross-signed Device OEM CA and reads the extensions', async () => {
    const key = point();
    const endpoint = await issueEndpointCertificate({
      instanceCa: instance,
      endpointPublicKey: key,
      vehicleIdentifier,
      role: 'owner',
      entitlements: Buffer.from('01013f', 'hex'),
    });
    const verified = new EndpointChainVerifier(pki.vehicleOemRootCert).verify([endpoint, ...chainTail]);
    expect(verified.publicKeyPoint.equals(key)).toBe(true);
    expect(verified.vehicleIdentifier).toBe('0102030405060708');
    expect(verified.role).toBe('owner');
    expect(verified.entitlements?.toString('hex')).toBe('01013f');
    expect(verified.keyIdentifier).toMatch(/^[0-9a-f]{16}$/);
  });

  it('refuses a chain from another root, a self-signed Device OEM CA, expired and wrong-length chains', async () => {
    const endpoint = await issueEndpointCertificate({
      instanceCa: instance,
      endpointPublicKey: point(),
      vehicleIdentifier,
      role: 'owner',
    });
    const other = await createPkiSet();
    const reason = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return (error as ChainVerificationError).reason;
      }
      return 'accepted';
    };
    expect(reason(() => new EndpointChainVerifier(other.vehicleOemRootCert).verify([endpoint, ...chainTail]))).toBe(
      'untrusted',
    );
    expect(
      reason(() =>
        new EndpointChainVerifier(pki.vehicleOemRootCert).verify([endpoint, chainTail[0], der(pki.deviceOemCaCert)]),
      ),
    ).toBe('untrusted');
    const day = 86_400_000;
    const expired = await issueEndpointCertificate({
      instanceCa: instance,
      endpointPublicKey: point(),
      vehicleIdentifier,
      role: 'owner',
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    expect(reason(() => new EndpointChainVerifier(pki.vehicleOemRootCert).verify([expired, ...chainTail]))).toBe(
      'expired',
    );
    expect(reason(() => new EndpointChainVerifier(pki.vehicleOemRootCert).verify([endpoint]))).toBe('length');
    expect(
      reason(() =>
        new EndpointChainVerifier(pki.vehicleOemRootCert).verify([Buffer.from('3000', 'hex'), ...chainTail]),
      ),
    ).toBe('malformed');
  });

  it('checks every later chain through intermediates it has already verified', async () => {
    const verifier = new EndpointChainVerifier(pki.vehicleOemRootCert);
    const issue = (ca: CertificateAuthority, key: Buffer, notBefore?: Date) =>
      issueEndpointCertificate({ instanceCa: ca, endpointPublicKey: key, vehicleIdentifier, role: 'owner', notBefore });
    const first = point();
    expect(verifier.verify([await issue(instance, first), ...chainTail]).publicKeyPoint.equals(first)).toBe(true);
    const second = point();
    expect(verifier.verify([await issue(instance, second), ...chainTail]).publicKeyPoint.equals(second)).toBe(true);

    const failure = (chain: Buffer[], now?: Date) => {
      try {
        verifier.verify(chain, now);
      } catch (error) {
        return { reason: (error as ChainVerificationError).reason, message: (error as Error).message };
      }
      return { reason: 'accepted', message: '' };
    };
    // An endpoint another Instance CA signed, presented with the verified intermediates.
    const other = await createPkiSet();
    const foreign = await issue(await loadCertificateAuthority(other.instanceCaCert, other.instanceCaKey), point());
    expect(failure([foreign, ...chainTail])).toEqual({
      reason: 'untrusted',
      message: 'the endpoint certificate is not signed by the Instance CA',
    });
    // The verified Instance CA under a Device OEM CA that is not cross-signed by the root.
    expect(failure([await issue(instance, point()), chainTail[0], der(pki.deviceOemCaCert)]).reason).toBe('untrusted');
    // Validity is read on every chain, the remembered intermediates' included.
    const day = 86_400_000;
    const early = await issue(instance, point(), new Date(Date.now() - 10 * day));
    const intermediateFrom = new Date(new X509Certificate(pki.instanceCaCert).validFrom);
    expect(failure([early, ...chainTail], new Date(intermediateFrom.getTime() - day))).toMatchObject({
      reason: 'not-yet-valid',
      message: expect.stringMatching(/^certificate [12] /) as unknown,
    });
  });
});
