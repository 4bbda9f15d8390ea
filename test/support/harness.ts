import 'reflect-metadata';
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { loadConfig, pkiMaterialFromSet, type AppConfig } from '../../src/config/config.js';
import { createApiServer, type ApiServer } from '../../src/app/server.js';
import { startWorker, type WorkerProcess } from '../../src/app/worker-process.js';
import { issueOperatorToken } from '../../src/common/auth/operator-token.js';
import type { OperatorScope } from '../../src/common/auth/operator-scopes.js';
import { createPkiSet, type PkiSet } from '../../src/pki/dev-pki.js';
import {
  generateEcKeyPair,
  issueCertificate,
  loadCertificateAuthority,
  privateKeyToPem,
  x509,
  type CertificateProfile,
} from '../../src/pki/certificate-issuer.js';
import {
  eventually,
  httpJson,
  readResponse,
  requestPayload,
  type HttpJsonOptions,
  type HttpResult,
} from '../../src/sim/world/http-json.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export { eventually, type HttpResult };

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ClientIdentity {
  certPem: string;
  keyPem: string;
}

export interface TestPki {
  set: PkiSet;
  partner: ClientIdentity;
  /** A second allow-listed Device OEM partner ("other-oem"), for tenant-isolation tests. */
  otherPartner: ClientIdentity;
  /** Issues a client certificate from one of the test CAs. */
  issueClient(options: {
    issuer: 'device-oem' | 'vehicle-root' | 'unknown';
    profile?: CertificateProfile;
    notBefore?: Date;
    notAfter?: Date;
    commonName?: string;
    /** Replace the profile's extensions (key usage, EKU, …) with exactly these. */
    extensions?: x509.Extension[];
  }): Promise<ClientIdentity>;
}

let unknownCa: Awaited<ReturnType<typeof makeUnknownCa>> | undefined;

async function makeUnknownCa() {
  const keys = await generateEcKeyPair();
  const certificate = await issueCertificate({
    profile: 'root-ca',
    commonName: 'Device OEM CA',
    publicKey: keys.publicKey,
    selfSignKey: keys.privateKey,
  });
  return { certificate, privateKey: keys.privateKey };
}

export async function createTestPki(): Promise<TestPki> {
  const set = await createPkiSet();
  const authorities = {
    'device-oem': await loadCertificateAuthority(set.deviceOemCaCert, set.deviceOemCaKey),
    'vehicle-root': await loadCertificateAuthority(set.vehicleOemRootCert, set.vehicleOemRootKey),
  };
  const otherKeys = await generateEcKeyPair();
  const otherCert = await issueCertificate({
    profile: 'tls-client',
    commonName: 'other-oem-client',
    publicKey: otherKeys.publicKey,
    issuer: authorities['device-oem'],
  });
  return {
    set,
    partner: { certPem: set.deviceOemClientCert, keyPem: set.deviceOemClientKey },
    otherPartner: { certPem: otherCert.toString('pem'), keyPem: await privateKeyToPem(otherKeys.privateKey) },
    async issueClient(options) {
      unknownCa ??= await makeUnknownCa();
      const issuer = options.issuer === 'unknown' ? unknownCa : authorities[options.issuer];
      const keys = await generateEcKeyPair();
      if (options.extensions) {
        const custom = await x509.X509CertificateGenerator.create({
          serialNumber: randomBytes(8).toString('hex').replace(/^./, '1'),
          subject: `CN=${options.commonName ?? 'test-client'}`,
          issuer: issuer.certificate.subject,
          notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
          notAfter: options.notAfter ?? new Date(Date.now() + 86_400_000),
          publicKey: keys.publicKey,
          signingKey: issuer.privateKey,
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
          extensions: options.extensions,
        });
        return { certPem: custom.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
      }
      const cert = await issueCertificate({
        profile: options.profile ?? 'tls-client',
        commonName: options.commonName ?? 'test-client',
        publicKey: keys.publicKey,
        issuer,
        notBefore: options.notBefore,
        notAfter: options.notAfter,
      });
      return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
    },
  };
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Delivery timings short enough for tests (in-process systems and the processes of server-processes.ts). */
export const FAST_DELIVERY_ENV = {
  OUTBOX_RELAY_INTERVAL_MS: '50',
  DELIVERY_SWEEP_INTERVAL_MS: '200',
  DELIVERY_SWEEP_GRACE_MS: '2000',
  DELIVERY_BACKOFF_BASE_MS: '50',
  DELIVERY_BACKOFF_MAX_MS: '400',
  TELEMATICS_TIMEOUT_MS: '2000',
};

export const DEAD_NOTIFICATION_URLS = 'device-oem=https://127.0.0.1:9,other-oem=https://127.0.0.1:9';

export interface TestConfigOptions {
  env?: Record<string, string>;
}

export function testConfig(pki: TestPki, database: TestDatabase, options: TestConfigOptions = {}): AppConfig {
  return loadConfig(
    {
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      REDIS_URL,
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      ADMIN_PORT: '0',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'error',
      QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      ...FAST_DELIVERY_ENV,
      // Nothing listens on the discard port: notifications stay pending unless a test points them at a backend.
      PARTNER_NOTIFICATION_URLS: DEAD_NOTIFICATION_URLS,
      ...options.env,
    },
    {
      pki: pkiMaterialFromSet(pki.set),
      defaultPartners: [
        { name: 'device-oem', fingerprint: fingerprintOf(pki.set.deviceOemClientCert) },
        { name: 'other-oem', fingerprint: fingerprintOf(pki.otherPartner.certPem) },
      ],
    },
  );
}

export interface TestSystem {
  pki: TestPki;
  database: TestDatabase;
  config: AppConfig;
  server: ApiServer;
  worker?: WorkerProcess;
  adminUrl: string;
  apiUrl: string;
  operatorToken(scopes: OperatorScope[], options?: { ttlSeconds?: number; key?: string }): Promise<string>;
  startWorker(): Promise<WorkerProcess>;
  stop(): Promise<void>;
}

/** Real PostgreSQL (own database), real Redis (own queue prefix), real TLS, in-memory PKI. */
export async function startTestSystem(
  options: TestConfigOptions & { worker?: boolean; pki?: TestPki; database?: TestDatabase } = {},
): Promise<TestSystem> {
  const pki = options.pki ?? (await createTestPki());
  const database = options.database ?? (await createTestDatabase());
  const config = testConfig(pki, database, options);
  const server = await createApiServer(config);
  const system: TestSystem = {
    pki,
    database,
    config,
    server,
    adminUrl: `http://127.0.0.1:${server.adminPort}`,
    apiUrl: `https://127.0.0.1:${server.apiPort}`,
    operatorToken: (scopes, tokenOptions = {}) =>
      issueOperatorToken(tokenOptions.key ?? pki.set.operatorTokenKey, {
        subject: 'test-operator',
        scopes,
        ttlSeconds: tokenOptions.ttlSeconds ?? 300,
      }),
    async startWorker() {
      system.worker = await startWorker(config);
      return system.worker;
    },
    async stop() {
      await system.worker?.close();
      await server.close();
      await database.drop();
    },
  };
  if (options.worker) await system.startWorker();
  return system;
}

/** What a client of a running system needs: its addresses, trust and operator tokens (in-process or not). */
export type SystemEndpoints = Pick<TestSystem, 'pki' | 'adminUrl' | 'apiUrl' | 'operatorToken'>;

/** Plain HTTP to the admin listener. */
export function adminRequest<T = unknown>(
  system: Pick<SystemEndpoints, 'adminUrl'>,
  method: string,
  path: string,
  options: HttpJsonOptions = {},
): Promise<HttpResult<T>> {
  return httpJson<T>(method, `${system.adminUrl}${path}`, options);
}

/** HTTPS with a client certificate to the mTLS listener; the server certificate is verified. */
export function mtlsRequest<T = unknown>(
  system: Pick<SystemEndpoints, 'apiUrl' | 'pki'>,
  method: string,
  path: string,
  options: {
    identity?: ClientIdentity;
    body?: unknown;
    rawBody?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<HttpResult<T>> {
  const payload = requestPayload(options);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${system.apiUrl}${path}`,
      {
        method,
        ca: system.pki.set.vehicleOemRootCert,
        cert: options.identity?.certPem,
        key: options.identity?.keyPem,
        rejectUnauthorized: true,
        agent: false,
        headers: { ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
      },
      (res) => readResponse(res, resolve, reject),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A simulated car's long-term key pair; the private key stays in the test's car object. */
export function newVehicleKeyPair(): { privateKey: KeyObject; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function keyFromPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}

export const TEST_VIN = (n: number) => `WDD1234567A${String(n).padStart(6, '0')}`;
