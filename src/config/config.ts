import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PKI_FILES, type PkiFileId } from '../pki/pki-files.js';

/** PEM material the server loads once at start-up (from `PKI_DIR`, or built in memory by tests). */
export interface PkiMaterial {
  /** Vehicle OEM root: trusted for vehicle client certificates and endpoint chains; issues vehicle certificates. */
  vehicleOemRootCertPem: string;
  vehicleOemRootKeyPem: string;
  /** Device OEM CA: trusted for partner client certificates. */
  deviceOemCaCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Client certificate for calls to Device OEM backends. */
  serverClientCertPem: string;
  serverClientKeyPem: string;
  /** ES256 key that signs commands to cars (PROTOCOL.md §8). */
  telematicsKeyPem: string;
  /** ES256 key that signs KTS receipts (PROTOCOL.md §3.4). */
  ktsKeyPem: string;
  /** ES256 public key that verifies operator tokens. */
  operatorTokenPublicKeyPem: string;
  /** AES-256 key (base64) for secrets at rest. */
  dataEncryptionKey: string;
}

export interface PartnerAllowEntry {
  name: string;
  /** Lower-case hex SHA-256 of the partner's client certificate (DER). */
  fingerprint: string;
}

/** A token bucket: `burst` requests at once, refilled at `perSecond`; burst 0 turns the limit off. */
export interface RateLimit {
  burst: number;
  perSecond: number;
}

export interface AppConfig {
  environment: 'development' | 'test' | 'production';
  databaseUrl: string;
  redisUrl: string;
  pkiDir: string;
  api: { host: string; port: number };
  admin: { host: string; port: number };
  /** The worker's Prometheus endpoint (`/metrics`); port 0 picks a free one. */
  workerMetrics: { host: string; port: number };
  partners: PartnerAllowEntry[];
  /** Live friend keys one vehicle may have (PROTOCOL.md §7: 5 by default). */
  friendKeyLimit: number;
  /** Where each partner receives notifications (base URL of its mTLS endpoint), from configuration only. */
  partnerNotificationUrls: Record<string, string>;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  bodyLimitBytes: number;
  /** Request budgets shared by all api replicas (kept in Redis): per partner and per operator token subject. */
  rateLimits: { partner: RateLimit; operator: RateLimit };
  queuePrefix: string;
  delivery: {
    /** How often the relay looks for unpublished outbox rows when idle. */
    relayIntervalMs: number;
    /** How often the sweeper looks for deliveries that fell through the cracks. */
    sweepIntervalMs: number;
    /** A delivery not acked this long after its due time is re-enqueued by the sweeper. */
    sweepGraceMs: number;
    /** Timeout of one HTTPS call to a car's telematics endpoint. */
    requestTimeoutMs: number;
    backoffBaseMs: number;
    backoffMaxMs: number;
  };
  pairing: {
    /** scrypt cost N for the pairing password (PROTOCOL.md §3.1: 32768; tests may use 4096). */
    scryptN: number;
    /** How long a pairing password stays usable. */
    ttlSeconds: number;
  };
  pki: PkiMaterial;
  /** Trust anchors for the HTTPS calls to cars' telematics endpoints (PEM). */
  telematicsCaPem: string;
}

/** A configuration value is missing or wrong; the message names the variable and what it expects. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

/** A trimmed string, `fallback` when unset or empty. */
export function text(env: Env, name: string, fallback: string): string {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  return value.trim();
}

/** An integer in [min, max], `fallback` when unset or empty. */
export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()))
    throw new ConfigError(`${name}="${raw}" is not valid: expected an integer from ${min} to ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name}=${value} is out of range: expected ${min} to ${max}`);
  return value;
}

function powerOfTwo(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = integer(env, name, fallback, min, max);
  if ((value & (value - 1)) !== 0) throw new ConfigError(`${name}=${value} is not valid: expected a power of two`);
  return value;
}

/** A URL with one of `protocols`, `fallback` when unset or empty. */
export function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = text(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name}="${value}" is not a URL: expected e.g. ${fallback}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name}="${value}" has protocol ${parsed.protocol}: expected ${protocols.join(' or ')}`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const value = text(env, name, fallback);
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${name}="${value}" is not valid: expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function rateLimit(env: Env, who: 'PARTNER' | 'OPERATOR', fallback: RateLimit): RateLimit {
  return {
    burst: integer(env, `RATE_LIMIT_${who}_BURST`, fallback.burst, 0, 1_000_000),
    perSecond: integer(env, `RATE_LIMIT_${who}_PER_SECOND`, fallback.perSecond, 1, 1_000_000),
  };
}

/** `name=https://host:port` pairs separated by commas. */
export function parseNotificationUrls(raw: string): Record<string, string> {
  const entries = raw
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf('=');
      const name = eq > 0 ? part.slice(0, eq).trim() : '';
      const value = eq > 0 ? part.slice(eq + 1).trim() : '';
      let valid = /^[a-z0-9][a-z0-9._-]{0,63}$/.test(name);
      try {
        valid &&= new URL(value).protocol === 'https:';
      } catch {
        valid = false;
      }
      if (!valid) {
        throw new ConfigError(
          `PARTNER_NOTIFICATION_URLS entry "${part}" is not valid: expected name=https://host:port, comma-separated`,
        );
      }
      return [name, value.replace(/\/+$/, '')] as const;
    });
  return Object.fromEntries(entries);
}

/** `name=fingerprint` pairs separated by commas; fingerprints are SHA-256 hex, colons optional. */
export function parsePartnerAllowList(name: string, raw: string): PartnerAllowEntry[] {
  return raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const eq = part.indexOf('=');
      const partner = eq > 0 ? part.slice(0, eq).trim() : '';
      const fingerprint = (eq > 0 ? part.slice(eq + 1) : '').replace(/:/g, '').trim().toLowerCase();
      if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(partner) || !/^[0-9a-f]{64}$/.test(fingerprint)) {
        throw new ConfigError(
          `${name} entry "${part}" is not valid: expected name=<SHA-256 fingerprint as 64 hex digits>, comma-separated`,
        );
      }
      return { name: partner, fingerprint };
    });
}

function readPki(pkiDir: string, file: string): string {
  const path = join(pkiDir, file);
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(
      `PKI_DIR="${pkiDir}" has no readable ${file}: run "npm run pki:dev" to create the development PKI, or point PKI_DIR at your PKI`,
    );
  }
}

type PkiSource = (id: PkiFileId) => string;

function pkiMaterial(read: PkiSource): PkiMaterial {
  return {
    vehicleOemRootCertPem: read('vehicleOemRootCert'),
    vehicleOemRootKeyPem: read('vehicleOemRootKey'),
    deviceOemCaCertPem: read('deviceOemCaCert'),
    serverCertPem: read('serverCert'),
    serverKeyPem: read('serverKey'),
    serverClientCertPem: read('serverClientCert'),
    serverClientKeyPem: read('serverClientKey'),
    telematicsKeyPem: read('telematicsKey'),
    ktsKeyPem: read('ktsKey'),
    operatorTokenPublicKeyPem: read('operatorTokenPublicKey'),
    dataEncryptionKey: read('dataEncryptionKey').trim(),
  };
}

export function loadPkiMaterial(pkiDir: string): PkiMaterial {
  return pkiMaterial((id) => readPki(pkiDir, PKI_FILES[id]));
}

/** The server's share of a PKI set built in memory (tests). */
export function pkiMaterialFromSet(set: Record<PkiFileId, string>): PkiMaterial {
  return pkiMaterial((id) => set[id]);
}

export interface ConfigOverrides {
  /** Use this material instead of reading `PKI_DIR` (tests). */
  pki?: PkiMaterial;
  /** Default partner allow-list when `PARTNER_ALLOWLIST` is unset. */
  defaultPartners?: PartnerAllowEntry[];
}

/**
 * Reads and validates the whole configuration once. Every problem throws a ConfigError that
 * names the variable; nothing is read from the environment after start-up.
 */
export function loadConfig(env: Env = process.env, overrides: ConfigOverrides = {}): AppConfig {
  const environment = oneOf(env, 'NODE_ENV', 'development', ['development', 'test', 'production'] as const);
  const pkiDir = resolve(text(env, 'PKI_DIR', '.dev/pki'));
  const pki = overrides.pki ?? loadPkiMaterial(pkiDir);
  const partnersRaw = env.PARTNER_ALLOWLIST;
  let partners: PartnerAllowEntry[];
  if (partnersRaw !== undefined && partnersRaw.trim() !== '') {
    partners = parsePartnerAllowList('PARTNER_ALLOWLIST', partnersRaw);
  } else if (overrides.defaultPartners) {
    partners = overrides.defaultPartners;
  } else {
    partners = defaultPartnerFromPkiDir(pkiDir);
  }
  const telematicsCaFile = env.TELEMATICS_CA_FILE;
  let telematicsCaPem = pki.vehicleOemRootCertPem;
  if (telematicsCaFile) {
    try {
      telematicsCaPem = readFileSync(telematicsCaFile, 'utf8');
    } catch {
      throw new ConfigError(
        `TELEMATICS_CA_FILE="${telematicsCaFile}" cannot be read: expected a PEM file of CA certificates`,
      );
    }
  }
  const backoffBaseMs = integer(env, 'DELIVERY_BACKOFF_BASE_MS', 1_000, 10, 3_600_000);
  const backoffMaxMs = integer(env, 'DELIVERY_BACKOFF_MAX_MS', 300_000, 10, 86_400_000);
  if (backoffMaxMs < backoffBaseMs) {
    throw new ConfigError(
      `DELIVERY_BACKOFF_MAX_MS=${backoffMaxMs} is smaller than DELIVERY_BACKOFF_BASE_MS=${backoffBaseMs}: expected max ≥ base`,
    );
  }
  const queuePrefix = text(env, 'QUEUE_PREFIX', 'dks');
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(queuePrefix)) {
    throw new ConfigError(`QUEUE_PREFIX="${queuePrefix}" is not valid: expected 1-32 letters, digits, "_" or "-"`);
  }
  return {
    environment,
    databaseUrl: url(env, 'DATABASE_URL', 'postgres://postgres@localhost:5432/digital_key', [
      'postgres:',
      'postgresql:',
    ]),
    redisUrl: url(env, 'REDIS_URL', 'redis://localhost:6379', ['redis:', 'rediss:']),
    pkiDir,
    api: { host: text(env, 'API_HOST', '0.0.0.0'), port: integer(env, 'API_PORT', 8443, 0, 65535) },
    admin: { host: text(env, 'ADMIN_HOST', '127.0.0.1'), port: integer(env, 'ADMIN_PORT', 8080, 0, 65535) },
    workerMetrics: {
      host: text(env, 'WORKER_METRICS_HOST', '127.0.0.1'),
      port: integer(env, 'WORKER_METRICS_PORT', 9464, 0, 65535),
    },
    partners,
    friendKeyLimit: integer(env, 'FRIEND_KEY_LIMIT', 5, 0, 100),
    partnerNotificationUrls: parseNotificationUrls(
      text(env, 'PARTNER_NOTIFICATION_URLS', 'device-oem=https://localhost:9443'),
    ),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error'] as const),
    bodyLimitBytes: integer(env, 'BODY_LIMIT_BYTES', 65_536, 1_024, 10_485_760),
    rateLimits: {
      partner: rateLimit(env, 'PARTNER', { burst: 2_000, perSecond: 1_000 }),
      operator: rateLimit(env, 'OPERATOR', { burst: 300, perSecond: 100 }),
    },
    queuePrefix,
    delivery: {
      relayIntervalMs: integer(env, 'OUTBOX_RELAY_INTERVAL_MS', 200, 10, 60_000),
      sweepIntervalMs: integer(env, 'DELIVERY_SWEEP_INTERVAL_MS', 10_000, 100, 3_600_000),
      sweepGraceMs: integer(env, 'DELIVERY_SWEEP_GRACE_MS', 30_000, 0, 86_400_000),
      requestTimeoutMs: integer(env, 'TELEMATICS_TIMEOUT_MS', 10_000, 100, 120_000),
      backoffBaseMs,
      backoffMaxMs,
    },
    pairing: {
      scryptN: powerOfTwo(env, 'PAIRING_SCRYPT_N', 32_768, 1_024, 1_048_576),
      ttlSeconds: integer(env, 'PAIRING_TTL_SECONDS', 3_600, 60, 7 * 86_400),
    },
    pki,
    telematicsCaPem,
  };
}

function defaultPartnerFromPkiDir(pkiDir: string): PartnerAllowEntry[] {
  // The dev PKI writes the Device OEM client certificate; trusting it by default makes the
  // local stack work out of the box. Production sets PARTNER_ALLOWLIST explicitly.
  const pem = readPki(pkiDir, PKI_FILES.deviceOemClientCert);
  return [{ name: 'device-oem', fingerprint: certificateFingerprint(pem) }];
}

/** Lower-case hex SHA-256 over the certificate's DER, the form the allow-list uses. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
}
