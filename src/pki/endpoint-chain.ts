import { X509Certificate, createHash } from 'node:crypto';
import { readEndpointCertificateFields, type KeyRole } from '../protocol/certificate-extensions.js';
import { BoundedCache } from '../common/cache/bounded-cache.js';
import { exportPublicKey } from '../protocol/crypto/p256.js';

export type ChainFailure =
  | 'malformed'
  | 'length'
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'not-a-ca'
  | 'bad-endpoint-key'
  | 'key-identifier-mismatch';

export class ChainVerificationError extends Error {
  override readonly name = 'ChainVerificationError';
  constructor(
    readonly reason: ChainFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface VerifiedEndpoint {
  /** Lower-case hex of SHA-256(public key)[0:8] (PROTOCOL.md §4.6), equal to the certificate CN. */
  keyIdentifier: string;
  /** Uncompressed P-256 point. */
  publicKeyPoint: Buffer;
  certificateDer: Buffer;
  certificatePem: string;
  vehicleIdentifier: string | null;
  role: KeyRole | null;
  entitlements: Buffer | null;
  notBefore: Date;
  notAfter: Date;
}

/** An endpoint chain is `[endpoint, Instance CA, Device OEM CA cross-signed by our root]` (PROTOCOL.md §2). */
export const ENDPOINT_CHAIN_LENGTH = 3;
const MAX_CERTIFICATE_BYTES = 4_096;

/** Verified intermediates kept per verifier (each at most 4 KiB of DER twice over). */
const MAX_REMEMBERED_INTERMEDIATES = 256;

function parseCertificate(der: Buffer, index: number): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new ChainVerificationError('malformed', `certificate ${index} is not DER X.509`);
  }
}

function commonName(subject: string): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1];
}

/**
 * Verifies device endpoint chains against the Vehicle OEM root with node:crypto (signatures,
 * validity, CA flags), and reads the private extensions of §2. Only a chain that ends at our
 * own root is trusted.
 */
export class EndpointChainVerifier {
  private readonly root: X509Certificate;
  /**
   * Intermediates whose signature path up to the root has been verified, by their exact DER and
   * that of everything above them. Chains of one Instance CA share both intermediates, so only
   * the endpoint certificate is parsed and its signature checked; validity and CA flags are
   * still checked on every chain.
   */
  private readonly verifiedIntermediates = new BoundedCache<string, X509Certificate>(MAX_REMEMBERED_INTERMEDIATES);

  constructor(rootPem: string) {
    this.root = new X509Certificate(rootPem);
  }

  verify(chainDer: readonly Buffer[], now: Date = new Date()): VerifiedEndpoint {
    if (chainDer.length !== ENDPOINT_CHAIN_LENGTH) {
      throw new ChainVerificationError(
        'length',
        `the chain must be ${ENDPOINT_CHAIN_LENGTH} certificates: endpoint, Instance CA, Device OEM CA (cross-signed)`,
      );
    }
    const keys = chainDer.map((der, index) => {
      if (der.length === 0 || der.length > MAX_CERTIFICATE_BYTES) {
        throw new ChainVerificationError('malformed', `certificate ${index} is empty or too large`);
      }
      // The endpoint certificate is new on every chain; an intermediate is named with all above it.
      return index === 0
        ? ''
        : chainDer
            .slice(index)
            .map((above) => above.toString('base64'))
            .join('.');
    });
    const certificates = chainDer.map(
      (der, index) => this.verifiedIntermediates.get(keys[index]) ?? parseCertificate(der, index),
    );
    const [endpoint, instance, deviceOem] = certificates;
    const links: Array<[X509Certificate, X509Certificate, string]> = [
      [endpoint, instance, 'the endpoint certificate is not signed by the Instance CA'],
      [instance, deviceOem, 'the Instance CA is not signed by the Device OEM CA'],
      [deviceOem, this.root, 'the Device OEM CA is not cross-signed by the Vehicle OEM root'],
    ];
    for (const [index, [child, issuer, message]] of links.entries()) {
      if (this.verifiedIntermediates.get(keys[index]) === child) continue;
      if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey))
        throw new ChainVerificationError('untrusted', message);
    }
    for (const [index, certificate] of certificates.entries()) {
      if (new Date(certificate.validTo) < now) {
        throw new ChainVerificationError(
          'expired',
          `certificate ${index} expired at ${new Date(certificate.validTo).toISOString()}`,
        );
      }
      if (new Date(certificate.validFrom) > now) {
        throw new ChainVerificationError(
          'not-yet-valid',
          `certificate ${index} is not valid before ${new Date(certificate.validFrom).toISOString()}`,
        );
      }
    }
    if (!instance.ca || !deviceOem.ca) throw new ChainVerificationError('not-a-ca', 'an intermediate is not a CA');
    if (endpoint.ca) throw new ChainVerificationError('bad-endpoint-key', 'the endpoint certificate is a CA');
    const key = endpoint.publicKey;
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new ChainVerificationError('bad-endpoint-key', 'the endpoint key must be EC P-256');
    }
    // Through JWK: on this path an SPKI DER export costs OpenSSL's encoder set-up, about 30 times as much.
    const publicKeyPoint = exportPublicKey(key);
    const keyIdentifier = createHash('sha256').update(publicKeyPoint).digest().subarray(0, 8).toString('hex');
    const cn = commonName(endpoint.subject)?.toLowerCase();
    if (cn !== keyIdentifier) {
      throw new ChainVerificationError(
        'key-identifier-mismatch',
        `the endpoint certificate names key ${cn ?? '(none)'} but its key's identifier is ${keyIdentifier}`,
      );
    }
    let fields: ReturnType<typeof readEndpointCertificateFields>;
    try {
      fields = readEndpointCertificateFields(endpoint.raw);
    } catch {
      throw new ChainVerificationError('malformed', 'the endpoint certificate extensions are malformed');
    }
    // Every link verified from the root down: the intermediates may skip their signature checks next time.
    for (const index of [2, 1]) {
      if (!this.verifiedIntermediates.has(keys[index]))
        this.verifiedIntermediates.set(keys[index], certificates[index]);
    }
    return {
      keyIdentifier,
      publicKeyPoint,
      certificateDer: endpoint.raw,
      certificatePem: endpoint.toString(),
      vehicleIdentifier: fields.vehicleIdentifier?.length === 8 ? fields.vehicleIdentifier.toString('hex') : null,
      role: fields.role,
      entitlements: fields.entitlements,
      notBefore: new Date(endpoint.validFrom),
      notAfter: new Date(endpoint.validTo),
    };
  }
}
