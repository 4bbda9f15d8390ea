import { x509 } from './certificate-issuer.js';

/**
 * Why a TLS client certificate may not authenticate a client, or undefined when it may. OpenSSL
 * refuses an EKU without clientAuth at the handshake, but accepts a CA certificate that lists
 * clientAuth, and a key usage of keyAgreement alone, though an ECDSA client key needs
 * digitalSignature to sign the handshake (RFC 5280 §4.2.1.3). Checked once per TLS connection.
 */
export function clientCertificateRefusal(der: Uint8Array): string | undefined {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(der);
  } catch {
    return 'the client certificate cannot be parsed';
  }
  const basic = certificate.getExtension(x509.BasicConstraintsExtension);
  if (basic?.ca) return 'the client certificate is a CA certificate';
  const usages = certificate.getExtension(x509.KeyUsagesExtension);
  if (usages && (usages.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    return 'the client certificate key usage lacks digitalSignature';
  }
  const extended = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  if (extended && !extended.usages.includes(x509.ExtendedKeyUsage.clientAuth)) {
    return 'the client certificate extended key usage lacks clientAuth';
  }
  return undefined;
}
