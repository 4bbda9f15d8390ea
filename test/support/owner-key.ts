import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { loadCertificateAuthority } from '../../src/pki/certificate-issuer.js';
import type { P256KeyPair } from '../../src/protocol/crypto/p256.js';
import { encodeTerminationProof, terminationAttestationMessage } from '../../src/protocol/termination-attestation.js';
import { issueEndpointCertificate } from '../../src/pki/endpoint-certificate.js';
import { adminRequest, eventually, mtlsRequest, type SystemEndpoints } from './harness.js';
import type { TestCar } from './test-car.js';

export interface PairingResponse {
  sessionId: string;
  password: string;
  expiresAt: string;
  scrypt: { N: number; r: number; p: number };
  verifierDelivery: { id: string; seq: number };
}

export interface Registration {
  keyId: string;
  state: string;
  role: string;
  ktsReceipt: { issuedAtMs: number; signature: string; encoded: string };
}

export const certificateDer = (pem: string) => Buffer.from(new X509Certificate(pem).raw);

export function newEndpointPoint(): Buffer {
  const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  return Buffer.from(spki.subarray(spki.length - 65));
}

export async function startPairing(system: SystemEndpoints, vin: string): Promise<PairingResponse> {
  const token = await system.operatorToken(['vehicles:write']);
  const res = await adminRequest<PairingResponse>(system, 'POST', `/v1/vehicles/${vin}/owner-pairing`, {
    token,
    body: {},
  });
  if (res.status !== 201) throw new Error(`pairing did not start: ${res.status} ${res.text}`);
  return res.body;
}

/** An endpoint chain as a device's Instance CA would issue it: endpoint, Instance CA, Device OEM CA cross. */
export async function endpointChain(
  system: SystemEndpoints,
  vehicleIdentifier: string,
  options: { key?: Buffer; notBefore?: Date; notAfter?: Date; role?: 'owner' | 'friend' } = {},
): Promise<{ key: Buffer; endpoint: Buffer; chain: string[] }> {
  const instance = await loadCertificateAuthority(system.pki.set.instanceCaCert, system.pki.set.instanceCaKey);
  const key = options.key ?? newEndpointPoint();
  const endpoint = await issueEndpointCertificate({
    instanceCa: instance,
    endpointPublicKey: key,
    vehicleIdentifier: Buffer.from(vehicleIdentifier, 'hex'),
    role: options.role ?? 'owner',
    notBefore: options.notBefore,
    notAfter: options.notAfter,
  });
  const chain = [
    endpoint,
    certificateDer(system.pki.set.instanceCaCert),
    certificateDer(system.pki.set.deviceOemCaCrossCert),
  ];
  return { key, endpoint, chain: chain.map((c) => c.toString('base64')) };
}

/** Pairs an owner key for a test car end to end on the server side and waits until it is active. */
export async function activeOwnerKey(system: SystemEndpoints, car: TestCar, key?: Buffer): Promise<Registration> {
  await startPairing(system, car.vin);
  const { chain } = await endpointChain(system, car.vehicleIdentifier, { key });
  const res = await mtlsRequest<Registration>(system, 'POST', '/partner/v1/keys', {
    identity: system.pki.partner,
    body: { vehicleId: car.vehicleIdentifier, role: 'owner', certificateChain: chain },
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${res.text}`);
  await eventually(
    async () =>
      (
        await mtlsRequest<{ state: string }>(system, 'GET', `/partner/v1/keys/${res.body.keyId}`, {
          identity: system.pki.partner,
        })
      ).body.state,
    (state) => state === 'active',
  );
  return res.body;
}

/** A device's termination attestation (PROTOCOL.md §5) for `keyId`, signed by `signer`, as base64. */
export function terminationAttestation(
  vehicleIdentifier: string,
  keyId: string,
  signer: P256KeyPair,
  counter: bigint,
  unixMs = Date.now(),
): string {
  const message = terminationAttestationMessage(
    Buffer.from(vehicleIdentifier, 'hex'),
    Buffer.from(keyId, 'hex'),
    counter,
    unixMs,
  );
  return encodeTerminationProof({ counter, unixMs, signature: signer.sign(message) }).toString('base64');
}
