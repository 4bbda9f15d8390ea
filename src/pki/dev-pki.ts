import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateEcKeyPair,
  issueCertificate,
  privateKeyToPem,
  publicKeyToPem,
  type CertificateAuthority,
} from './certificate-issuer.js';
import { PKI_FILES, type PkiFileId } from './pki-files.js';

export type PkiSet = Record<PkiFileId, string>;

export interface CreatePkiOptions {
  /** Extra SAN host names for the server certificate (the defaults cover localhost and compose). */
  serverDnsNames?: string[];
  validDays?: number;
}

const SERVER_DNS_NAMES = ['localhost', 'api'];
const LOOPBACK_IPS = ['127.0.0.1', '::1'];

/**
 * Builds the whole development PKI of ARCHITECTURE.md in memory: Vehicle OEM root, Device OEM CA
 * and its cross-certificate, an Instance CA, TLS certificates for the server, the Device OEM
 * (client and server) and the telematics gateway, and the KTS, telematics and operator-token
 * signing keys. Tests use it directly; `npm run pki:dev` writes it to files.
 */
export async function createPkiSet(options: CreatePkiOptions = {}): Promise<PkiSet> {
  const validDays = options.validDays ?? 825;
  const rootKeys = await generateEcKeyPair();
  const rootCert = await issueCertificate({
    profile: 'root-ca',
    commonName: 'Vehicle OEM Root CA',
    organization: 'Vehicle OEM',
    publicKey: rootKeys.publicKey,
    selfSignKey: rootKeys.privateKey,
    validDays: validDays * 4,
    pathLength: 2,
  });
  const root: CertificateAuthority = { certificate: rootCert, privateKey: rootKeys.privateKey };

  const deviceOemKeys = await generateEcKeyPair();
  const deviceOemCert = await issueCertificate({
    profile: 'root-ca',
    commonName: 'Device OEM CA',
    organization: 'Device OEM',
    publicKey: deviceOemKeys.publicKey,
    selfSignKey: deviceOemKeys.privateKey,
    validDays: validDays * 4,
    pathLength: 1,
  });
  const deviceOem: CertificateAuthority = { certificate: deviceOemCert, privateKey: deviceOemKeys.privateKey };
  // Same subject and key as the Device OEM CA, signed by our root: the bridge of PROTOCOL.md §2.
  const deviceOemCross = await issueCertificate({
    profile: 'intermediate-ca',
    commonName: 'Device OEM CA',
    organization: 'Device OEM',
    publicKey: deviceOemKeys.publicKey,
    issuer: root,
    validDays: validDays * 2,
    pathLength: 1,
  });

  const instanceKeys = await generateEcKeyPair();
  const instanceCert = await issueCertificate({
    profile: 'intermediate-ca',
    commonName: 'Instance CA (Vehicle OEM)',
    organization: 'Device OEM',
    publicKey: instanceKeys.publicKey,
    issuer: deviceOem,
    validDays: validDays * 2,
    pathLength: 0,
  });

  const leaf = async (
    profile: 'tls-server' | 'tls-client',
    commonName: string,
    issuer: CertificateAuthority,
    dnsNames: string[] = [],
  ) => {
    const keys = await generateEcKeyPair();
    const cert = await issueCertificate({
      profile,
      commonName,
      publicKey: keys.publicKey,
      issuer,
      validDays,
      dnsNames,
      ipAddresses: dnsNames.length > 0 ? LOOPBACK_IPS : [],
    });
    return { cert: cert.toString('pem'), key: await privateKeyToPem(keys.privateKey) };
  };
  const server = await leaf('tls-server', 'digital-key-server', root, [
    ...SERVER_DNS_NAMES,
    ...(options.serverDnsNames ?? []),
  ]);
  const deviceOemClient = await leaf('tls-client', 'device-oem-client', deviceOem);
  const deviceOemServer = await leaf('tls-server', 'device-oem-server', deviceOem, ['localhost', 'sim']);
  const gateway = await leaf('tls-server', 'telematics-gateway', root, ['localhost', 'sim']);
  const serverClient = await leaf('tls-client', 'digital-key-server', root);

  const signingKey = async () => {
    const keys = await generateEcKeyPair();
    return { key: await privateKeyToPem(keys.privateKey), pub: await publicKeyToPem(keys.publicKey) };
  };
  const telematics = await signingKey();
  const kts = await signingKey();
  const operatorToken = await signingKey();

  return {
    vehicleOemRootCert: rootCert.toString('pem'),
    vehicleOemRootKey: await privateKeyToPem(rootKeys.privateKey),
    deviceOemCaCert: deviceOemCert.toString('pem'),
    deviceOemCaKey: await privateKeyToPem(deviceOemKeys.privateKey),
    deviceOemCaCrossCert: deviceOemCross.toString('pem'),
    instanceCaCert: instanceCert.toString('pem'),
    instanceCaKey: await privateKeyToPem(instanceKeys.privateKey),
    serverCert: server.cert,
    serverKey: server.key,
    deviceOemClientCert: deviceOemClient.cert,
    deviceOemClientKey: deviceOemClient.key,
    deviceOemServerCert: deviceOemServer.cert,
    deviceOemServerKey: deviceOemServer.key,
    serverClientCert: serverClient.cert,
    serverClientKey: serverClient.key,
    telematicsGatewayCert: gateway.cert,
    telematicsGatewayKey: gateway.key,
    telematicsKey: telematics.key,
    telematicsPublicKey: telematics.pub,
    ktsKey: kts.key,
    ktsPublicKey: kts.pub,
    operatorTokenKey: operatorToken.key,
    operatorTokenPublicKey: operatorToken.pub,
    dataEncryptionKey: `${randomBytes(32).toString('base64')}\n`,
  };
}

export interface WriteDevPkiResult {
  dir: string;
  created: boolean;
  files: string[];
}

/**
 * Writes the development PKI into `dir` unless a complete one is already there (idempotent:
 * re-running keeps existing keys, so issued vehicle certificates stay valid).
 */
export async function writeDevPki(
  dir: string,
  options: CreatePkiOptions & { force?: boolean } = {},
): Promise<WriteDevPkiResult> {
  const ids = Object.keys(PKI_FILES) as PkiFileId[];
  const files = ids.map((id) => join(dir, PKI_FILES[id]));
  if (!options.force && files.every((file) => existsSync(file))) return { dir, created: false, files };
  writePkiSet(dir, await createPkiSet(options));
  return { dir, created: true, files };
}

/** Writes a PKI set as the files `PKI_DIR` holds (keys readable by the owner only). */
export function writePkiSet(dir: string, set: PkiSet): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const id of Object.keys(PKI_FILES) as PkiFileId[]) {
    const secret = PKI_FILES[id].endsWith('.key');
    writeFileSync(join(dir, PKI_FILES[id]), set[id], { mode: secret ? 0o600 : 0o644 });
  }
}

export function readPkiSet(dir: string): PkiSet {
  const ids = Object.keys(PKI_FILES) as PkiFileId[];
  return Object.fromEntries(ids.map((id) => [id, readFileSync(join(dir, PKI_FILES[id]), 'utf8')])) as PkiSet;
}
