import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OPERATOR_SCOPES } from '../common/auth/operator-scopes.js';
import { issueOperatorToken } from '../common/auth/operator-token.js';
import { PKI_FILES } from '../pki/pki-files.js';
import { CliError } from './cli-framework.js';
import { ServiceClient } from './service-client.js';

export const pkiDir = (): string => resolve(process.env.PKI_DIR ?? '.dev/pki');

/** The dev PKI's operator-token key (PEM); a CliError naming the file when it is missing. */
export function readOperatorTokenKey(dir = pkiDir()): string {
  const keyFile = join(dir, PKI_FILES.operatorTokenKey);
  try {
    return readFileSync(keyFile, 'utf8');
  } catch {
    throw new CliError(`cannot read ${keyFile}: run "npm run pki:dev" first, or give --token / DKS_TOKEN`);
  }
}

/** A short-lived operator token with every scope, minted once per process from the dev PKI's key. */
function mintedToken(dir: string): () => Promise<string> {
  let token: Promise<string> | undefined;
  return () =>
    (token ??= issueOperatorToken(readOperatorTokenKey(dir), {
      subject: 'cli',
      scopes: [...OPERATOR_SCOPES],
      ttlSeconds: 600,
    }));
}

export interface StackOptions {
  adminUrl?: string;
  simUrl?: string;
  /** A ready operator token; without one, one is minted from the dev PKI in `pkiDir`. */
  token?: string;
  pkiDir?: string;
}

const trimUrl = (value: string, what: string): string => {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new CliError(`${what} "${value}" is not a URL`, 2);
  }
  if (parsed.protocol !== 'http:') throw new CliError(`${what} "${value}" must be an http:// URL`, 2);
  return value.replace(/\/+$/, '');
};

/** The options every command shares, from flags or the environment. */
export function stackOptions(options: Record<string, string | boolean>): StackOptions {
  const pick = (name: string, variable: string): string | undefined => {
    const value = options[name];
    if (typeof value === 'string' && value.length > 0) return value;
    if (value === true) throw new CliError(`--${name} needs a value`, 2);
    const fromEnv = process.env[variable];
    return fromEnv && fromEnv.length > 0 ? fromEnv : undefined;
  };
  const adminUrl = pick('admin-url', 'DKS_ADMIN_URL');
  const simUrl = pick('sim-url', 'DKS_SIM_URL');
  const token = pick('token', 'DKS_TOKEN');
  return {
    ...(adminUrl ? { adminUrl: trimUrl(adminUrl, 'the admin URL') } : {}),
    ...(simUrl ? { simUrl: trimUrl(simUrl, 'the simulator URL') } : {}),
    ...(token ? { token } : {}),
  };
}

export const ACTIONS = ['unlock', 'lock', 'engine-start', 'trunk'] as const;
export type TapAction = (typeof ACTIONS)[number];

export interface KeyView {
  keyId: string;
  vin: string;
  role: string;
  state: string;
  version: number;
  partner: string;
  createdAt: string;
  updatedAt: string;
}
export interface CarKeyView {
  keyId: string;
  role: string;
  state: string;
  entitlements?: { rights: string[] };
}
export interface CarView {
  vin: string;
  vehicleId: string;
  vehicleIdentifier: string;
  online: boolean;
  keys: CarKeyView[];
}
export interface WalletKeyView {
  keyId: string;
  vin?: string;
  role: string;
  state: string;
  wallet?: string;
  serverState?: string;
  entitlements?: { rights: string[] };
}
export interface DeviceView {
  deviceId: string;
  name?: string;
  model: string;
  online: boolean;
  keys: WalletKeyView[];
}
export interface TapOutcome {
  allowed: boolean;
  result: string;
  reason: string;
  transaction: string;
  keyId?: string;
  action: string;
  durationMicros: number;
  wallMicros?: number;
}
export interface PairedKey {
  keyId: string;
  vin: string;
  deviceId: string;
  state: string;
  sessionId: string;
}
export interface SharedKey {
  friendKeyId: string;
  friendDeviceId: string;
  vin: string;
  profile: string;
  state: string;
}
export interface TimelineView {
  keyId: string;
  entries: Array<{ at: string; source: string; event: string; details: Record<string, unknown> }>;
}
export interface AuditVerification {
  ok: boolean;
  checked: number;
  chains: number;
  lastHash: string;
  firstBroken?: Record<string, unknown>;
}

/** The car's decision in a few words: `granted, fast transaction, 2.1 ms in the car`. */
export function describeTap(tap: TapOutcome): string {
  const reason = tap.reason === 'none' ? '' : ` (${tap.reason})`;
  return `${tap.result}${reason}, ${tap.transaction} transaction, ${(tap.durationMicros / 1000).toFixed(1)} ms in the car`;
}

/** A random VIN (ISO 3779 alphabet: no I, O or Q). */
export function randomVin(prefix = 'WDD'): string {
  const alphabet = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
  let vin = prefix;
  while (vin.length < 17) vin += alphabet[randomInt(alphabet.length)];
  return vin;
}

/**
 * The running system as the CLI and the demo see it: the server's admin API (operator calls) and
 * the simulator's control API (cars, phones, the Device OEM backend).
 */
export class Stack {
  readonly admin: ServiceClient;
  readonly sim: ServiceClient;

  constructor(options: StackOptions = {}) {
    const adminUrl = options.adminUrl ?? 'http://localhost:8080';
    const simUrl = options.simUrl ?? 'http://localhost:9090';
    const token = options.token;
    this.admin = new ServiceClient(
      {
        name: 'admin API',
        url: adminUrl,
        hint: 'start the server with "npm run up" (or "docker compose up"), or point --admin-url / DKS_ADMIN_URL at it',
      },
      token ? () => Promise.resolve(token) : mintedToken(options.pkiDir ?? pkiDir()),
    );
    this.sim = new ServiceClient({
      name: 'simulator',
      url: simUrl,
      hint: 'start it with "npm run sim" (or "docker compose up"), or point --sim-url / DKS_SIM_URL at it',
    });
  }

  // Simulator: cars and phones -------------------------------------------------------------------

  provisionCar(vin: string): Promise<CarView> {
    return this.sim.post<CarView>('/cars', { vin });
  }

  car(vin: string): Promise<CarView> {
    return this.sim.get<CarView>(`/cars/${encodeURIComponent(vin)}`);
  }

  setCarOnline(vin: string, online: boolean): Promise<CarView> {
    return this.sim.post<CarView>(`/cars/${encodeURIComponent(vin)}/online`, { online });
  }

  createDevice(name?: string): Promise<DeviceView> {
    return this.sim.post<DeviceView>('/devices', name === undefined ? {} : { name });
  }

  device(deviceId: string): Promise<DeviceView> {
    return this.sim.get<DeviceView>(`/devices/${encodeURIComponent(deviceId)}`);
  }

  setDeviceOnline(deviceId: string, online: boolean): Promise<DeviceView> {
    return this.sim.post<DeviceView>(`/devices/${encodeURIComponent(deviceId)}/online`, { online });
  }

  /**
   * Owner pairing: the operator starts a session on the server (the car receives the verifier
   * over telematics), the car enters pairing mode, the phone pairs at the car with the password.
   * The password goes from the server's answer to the phone and nowhere else.
   */
  async pair(vin: string, deviceId: string): Promise<PairedKey> {
    const session = await this.admin.post<{ sessionId: string; password: string }>(
      `/v1/vehicles/${encodeURIComponent(vin)}/owner-pairing`,
      {},
    );
    await this.sim.post(`/cars/${encodeURIComponent(vin)}/pairing`, { sessionId: session.sessionId });
    const paired = await this.sim.post<Omit<PairedKey, 'sessionId'>>(`/devices/${encodeURIComponent(deviceId)}/pair`, {
      vin,
      password: session.password,
      sessionId: session.sessionId,
    });
    return { ...paired, sessionId: session.sessionId };
  }

  tap(deviceId: string, vin: string, action: TapAction, mode?: 'fast' | 'standard'): Promise<TapOutcome> {
    return this.sim.post<TapOutcome>(`/devices/${encodeURIComponent(deviceId)}/tap`, {
      vin,
      action,
      ...(mode ? { mode } : {}),
    });
  }

  share(
    deviceId: string,
    request: { keyId: string; friendDeviceId: string; profile: string; pin?: string },
  ): Promise<SharedKey> {
    return this.sim.post<SharedKey>(`/devices/${encodeURIComponent(deviceId)}/share`, request);
  }

  deleteKey(deviceId: string, keyId: string): Promise<{ keyId: string; state: string }> {
    return this.sim.post(`/devices/${encodeURIComponent(deviceId)}/keys/${encodeURIComponent(keyId)}/delete`);
  }

  lostMode(
    deviceId: string,
    enabled: boolean,
  ): Promise<{ deviceId: string; lostMode: boolean; keys: Array<{ keyId: string; state: string }> }> {
    return this.sim.post(`/devices/${encodeURIComponent(deviceId)}/lost-mode`, { enabled });
  }

  // Server: operator calls ------------------------------------------------------------------------

  key(keyId: string): Promise<KeyView> {
    return this.admin.get<KeyView>(`/v1/keys/${encodeURIComponent(keyId)}`);
  }

  keyAction(keyId: string, operation: 'suspend' | 'resume' | 'terminate', reason?: string): Promise<KeyView> {
    return this.admin.post<KeyView>(
      `/v1/keys/${encodeURIComponent(keyId)}/${operation}`,
      reason === undefined ? {} : { reason },
    );
  }

  async vehicleKeys(vin: string): Promise<KeyView[]> {
    return (await this.admin.get<{ items: KeyView[] }>(`/v1/vehicles/${encodeURIComponent(vin)}/keys`)).items;
  }

  timeline(keyId: string): Promise<TimelineView> {
    return this.admin.get<TimelineView>(`/v1/keys/${encodeURIComponent(keyId)}/timeline`);
  }

  verifyAudit(): Promise<AuditVerification> {
    return this.admin.get<AuditVerification>('/v1/audit/verify');
  }
}
