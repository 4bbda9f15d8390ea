import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, integer, text, url, type Env } from '../../config/config.js';
import { PKI_FILES, type PkiFileId } from '../../pki/pki-files.js';
import type { WorldPki } from '../world/simulated-world.js';

/** The simulator process's configuration, read and validated once at start-up. */
export interface SimConfig {
  /** Address of the Device OEM backend and the telematics endpoint. */
  host: string;
  deviceOemPort: number;
  telematicsPort: number;
  /** Address and port of the control API (plain HTTP). */
  controlHost: string;
  controlPort: number;
  /** Base URL the server reaches the cars' telematics endpoint at (registered at provisioning). */
  telematicsUrl: string;
  /** The server's mTLS listener. */
  serverApiUrl: string;
  /** The server's admin listener (vehicle provisioning, owner pairing). */
  serverAdminUrl: string;
  pkiDir: string;
  pki: WorldPki;
  /** PEM of the dev PKI's operator-token key, when the PKI folder has it. */
  operatorTokenKeyPem?: string;
  /** A ready operator token (`SIM_OPERATOR_TOKEN`), used instead of minting one. */
  operatorToken?: string;
  stateFile: string;
  /** How long owner pairing waits for the car's verifier and the key's activation. */
  pairingTimeoutMs: number;
}

const WORLD_PKI_FILES: readonly (keyof WorldPki)[] = [
  'telematicsGatewayCert',
  'telematicsGatewayKey',
  'deviceOemServerCert',
  'deviceOemServerKey',
  'deviceOemClientCert',
  'deviceOemClientKey',
  'vehicleOemRootCert',
  'ktsPublicKey',
  'instanceCaCert',
  'instanceCaKey',
  'deviceOemCaCrossCert',
];

function readPkiFile(pkiDir: string, id: PkiFileId, optional: boolean): string | undefined {
  try {
    return readFileSync(join(pkiDir, PKI_FILES[id]), 'utf8');
  } catch {
    if (optional) return undefined;
    throw new ConfigError(
      `SIM_PKI_DIR="${pkiDir}" has no readable ${PKI_FILES[id]}: run "npm run pki:dev" to create the development PKI, or point SIM_PKI_DIR at it`,
    );
  }
}

/** Every problem throws a ConfigError naming the variable. */
export function loadSimConfig(env: Env = process.env): SimConfig {
  const host = text(env, 'SIM_HOST', '127.0.0.1');
  const deviceOemPort = integer(env, 'SIM_DEVICE_OEM_PORT', 9443, 0, 65535);
  const telematicsPort = integer(env, 'SIM_TELEMATICS_PORT', 9444, 0, 65535);
  const controlPort = integer(env, 'SIM_CONTROL_PORT', 9090, 0, 65535);
  const pkiDir = resolve(text(env, 'SIM_PKI_DIR', text(env, 'PKI_DIR', '.dev/pki')));
  const operatorToken = text(env, 'SIM_OPERATOR_TOKEN', '');
  if (operatorToken !== '' && !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(operatorToken)) {
    throw new ConfigError('SIM_OPERATOR_TOKEN is not valid: expected a compact JWT (npm run cli -- token)');
  }
  const pki = Object.fromEntries(WORLD_PKI_FILES.map((id) => [id, readPkiFile(pkiDir, id, false)])) as WorldPki;
  const operatorTokenKeyPem = readPkiFile(pkiDir, 'operatorTokenKey', operatorToken !== '');
  return {
    host,
    deviceOemPort,
    telematicsPort,
    controlHost: text(env, 'SIM_CONTROL_HOST', '127.0.0.1'),
    controlPort,
    telematicsUrl: url(env, 'SIM_TELEMATICS_URL', `https://localhost:${telematicsPort}`, ['https:']).replace(
      /\/+$/,
      '',
    ),
    serverApiUrl: url(env, 'SIM_SERVER_API_URL', 'https://localhost:8443', ['https:']),
    serverAdminUrl: url(env, 'SIM_SERVER_ADMIN_URL', 'http://localhost:8080', ['http:']).replace(/\/+$/, ''),
    pkiDir,
    pki,
    ...(operatorTokenKeyPem ? { operatorTokenKeyPem } : {}),
    ...(operatorToken ? { operatorToken } : {}),
    stateFile: resolve(text(env, 'SIM_STATE_FILE', '.dev/sim-state.json')),
    pairingTimeoutMs: integer(env, 'SIM_PAIRING_TIMEOUT_MS', 30_000, 1_000, 600_000),
  };
}
