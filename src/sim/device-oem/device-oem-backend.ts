import { createPublicKey, type KeyObject } from 'node:crypto';
import { createServer, request, Agent, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { NOTIFICATION_JWS_TYPE } from '../../protocol/telematics-messages.js';
import type { PkiSet } from '../../pki/dev-pki.js';
import { REVOCATION_RELAY_MAX_KEYS } from '../../protocol/mailbox.js';
import { InvitationRelay } from './invitation-relay.js';
import { verifyCompactJws } from '../../protocol/crypto/compact-jws.js';

/** One call the mocked Device OEM backend made or received, for tests and the demo. */
export interface DeviceOemCall {
  direction: 'outbound' | 'inbound';
  method: string;
  path: string;
  status: number;
  at: string;
  durationMs: number;
  /** Client certificate subject of an inbound call. */
  peer?: string;
  /** Inbound notification: what the backend did with it, or why it refused it. */
  outcome?: string;
}

export interface DeviceOemBackendOptions {
  /** TLS identity of the backend's own server (port 9443). */
  serverCertPem: string;
  serverKeyPem: string;
  /** Client certificate it presents to the Vehicle OEM server (allow-listed there). */
  clientCertPem: string;
  clientKeyPem: string;
  /** Trust anchor for the Vehicle OEM server's TLS certificate and its notification client certificate. */
  vehicleOemRootPem: string;
  /**
   * Base URL of the Vehicle OEM server's mTLS listener, from configuration only. A function is
   * read at each call, for harnesses that start the backend before the server it calls.
   */
  vehicleOemBaseUrl: string | (() => string);
  /**
   * The Vehicle OEM server's KTS public key (PEM), pinned at partner onboarding: every
   * notification must be a JWS it verifies. Without it the backend cannot authenticate
   * notifications, so it only records them and never applies one to a device.
   */
  ktsPublicKeyPem?: string;
  /** Base of the share links the backend serves (§7 step 1) **[stand-in]**. */
  shareBaseUrl?: string;
  /** Unix milliseconds, for invitation mailbox expiry. */
  clock?: () => number;
  host?: string;
  port?: number;
  /** Called after a verified notification was taken (applied, held, or dropped as a repeat). */
  onNotification?: (received: ReceivedNotification) => void;
  /**
   * How many entries each log (`calls`, `notifications`, `received`) keeps: at least the newest
   * `history`, at most twice that (older ones are dropped in batches). 0 keeps none, for
   * long-running load. Default 10 000.
   */
  history?: number;
}

export interface PartnerResponse<T> {
  status: number;
  body: T;
}

/** What a phone sends its maker's backend to register ("track") a new key (§3.4 owner, §7 step 4 friend). */
export interface KeyRegistrationRequest {
  /** 8-byte vehicle identifier, hex. */
  vehicleId: string;
  role: 'owner' | 'friend';
  /** DER: endpoint, Instance CA, Device OEM CA cross-signed by the Vehicle OEM root (§2). */
  certificateChain: readonly Uint8Array[];
  /** Friend keys: the owner-signed `SignedFriendAttestation` (DER, §7). */
  attestation?: Uint8Array;
  deviceMetadata?: { deviceType?: string; model?: string; osVersion?: string };
  /** The phone asking (its Device OEM account), so the backend knows which device holds the key; not sent on. */
  deviceId?: string;
}

/** The Vehicle OEM server's answer: the key as it tracks it, and the KTS receipt for the car. */
export interface KeyRegistration {
  keyId: string;
  vehicleId: string;
  role: string;
  state: string;
  ktsReceipt: { issuedAtMs: number; signature: string; encoded: string };
}

/** The key as the Vehicle OEM server reports it to its partner. */
export interface PartnerKey {
  keyId: string;
  vehicleId: string;
  role: string;
  state: string;
}

/** The Vehicle OEM server refused a partner call; `problem` is its problem+json body. */
export class PartnerCallError extends Error {
  override readonly name = 'PartnerCallError';

  constructor(
    readonly status: number,
    readonly problem: unknown,
  ) {
    const detail = (problem as { detail?: unknown } | null)?.detail;
    super(`the Vehicle OEM server answered ${status}${typeof detail === 'string' ? `: ${detail}` : ''}`);
  }
}

/** Notification types of the Vehicle OEM server (README, PROTOCOL.md appendix). */
export const KEY_NOTIFICATION_TYPES = [
  'KEY_ACTIVATED',
  'KEY_SUSPENDED',
  'KEY_RESUMED',
  'KEY_TERMINATING',
  'KEY_TERMINATED',
  'FRIEND_KEY_ENROLLED',
  'ACCESS_PROFILE_CHANGED',
  'REVOCATION_RELAY',
] as const;
export type KeyNotificationType = (typeof KEY_NOTIFICATION_TYPES)[number];

/** A notification whose KTS signature verified: the payload of the `dk-notification+jws`. */
export interface KeyNotification {
  readonly eventId: string;
  readonly type: KeyNotificationType;
  readonly keyId: string;
  /** 8-byte vehicle identifier, hex. */
  readonly vehicleId: string;
  /** Orders the notifications of one key. */
  readonly keyVersion: number;
  readonly state: string;
  readonly occurredAt: string;
  /** REVOCATION_RELAY: the head of the owner key's private mailbox (§4.7). */
  readonly revocationRelay?: { readonly keyListVersion: number; readonly keyIds: readonly string[] };
}

/**
 * What the backend did with a verified notification: pushed it to the phone holding the key
 * (`applied`), held it for a phone out of reach (`queued`, pushed when it is back), dropped it as
 * a repeat of an event already seen (`duplicate`) or as older than one already taken for the key
 * (`stale`), or kept it with no phone to tell (`no-device`).
 */
export type NotificationDisposition = 'applied' | 'queued' | 'duplicate' | 'stale' | 'no-device';

export interface ReceivedNotification {
  readonly notification: KeyNotification;
  readonly disposition: NotificationDisposition;
  readonly deviceId?: string;
  readonly at: string;
}

/** A phone as its maker's backend reaches it: the push channel (`SimulatedDevice` implements it). */
export interface ManagedDevice {
  readonly deviceId: string;
  /** Applies one verified key change from the Vehicle OEM server: suspend, resume, remote termination. */
  applyKeyNotification(notification: KeyNotification): void;
}

interface DeviceRecord {
  readonly device: ManagedDevice;
  reachable: boolean;
  readonly keys: Set<string>;
  /** Pushes held while the phone is out of reach, in arrival (= key-version) order. */
  readonly pending: KeyNotification[];
}

/** What the backend knows, for persistence: phones (reach, keys, held pushes) and the notifications taken. */
export interface DeviceOemSnapshot {
  devices: Array<{ deviceId: string; reachable: boolean; keys: string[]; pending: KeyNotification[] }>;
  /** Per key: the newest `keyVersion` taken and the `eventId`s of its most recent notifications. */
  keys: Record<string, { version: number; events: string[] }>;
}

/** A snapshot as saved before the per-key state: the newest version per key, event ids without their key. */
interface LegacyDeviceOemSnapshot {
  keyVersions?: Record<string, number>;
}

/** What the backend remembers of one key's notifications, to drop repeats and what is overtaken. */
interface KeyNotificationState {
  version: number;
  /** The most recent `eventId`s taken for the key, oldest first, at most `EVENTS_PER_KEY`. */
  events: string[];
}

/** The backend refused an inbound notification (answered 400). */
class NotificationRefusal extends Error {}

const MAX_BODY = 64 * 1024;
/**
 * How many `eventId`s of one key the backend remembers: a repeat of any of them is a `duplicate`;
 * an older one it has forgotten is still dropped, as `stale`, since its `keyVersion` is behind.
 */
const EVENTS_PER_KEY = 32;
/** Default length of each log (`calls`, `notifications`, `received`). */
const DEFAULT_HISTORY = 10_000;
const KEY_ID = /^[0-9a-f]{12,16}$/;

/**
 * The mocked Device OEM (phone maker) backend: calls the Vehicle OEM server over mTLS with its
 * client certificate, serves its own mTLS endpoint for notifications from the Vehicle OEM
 * server, and logs the calls both ways (the newest, see `history`). TLS verification is on in both directions.
 *
 * It knows which phone holds which key (phones enrol, registration records the key) and applies
 * each notification to that phone (§5): it verifies the JWS with the pinned KTS key (anything
 * else → 400), drops repeats by `eventId` and anything older than the newest `keyVersion` taken
 * for the key (both → 202), and pushes the rest, holding them for a phone out of reach.
 */
export class DeviceOemBackend {
  /** Calls both ways, newest last (bounded by `history`). */
  readonly calls: DeviceOemCall[] = [];
  /** Notification bodies answered 2xx, as received, newest last (bounded by `history`). */
  readonly notifications: unknown[] = [];
  /** Verified notifications and what the backend did with each, in arrival order (bounded by `history`). */
  readonly received: ReceivedNotification[] = [];
  /** Invitation mailboxes for sharing (§7 step 1): ciphertext only. */
  readonly invitations: InvitationRelay;
  readonly shareBaseUrl: string;
  private readonly agent: Agent;
  private readonly server: Server;
  readonly #ktsKey: KeyObject | undefined;
  readonly #devices = new Map<string, DeviceRecord>();
  readonly #holders = new Map<string, string>();
  readonly #keyNotifications = new Map<string, KeyNotificationState>();
  readonly #history: number;

  /**
   * The backend with the identities of a PKI set (`npm run pki:dev` or a test PKI): its server and
   * client certificates, the Vehicle OEM root it trusts and the KTS key it pins.
   */
  static fromPki(
    pki: Pick<
      PkiSet,
      | 'deviceOemServerCert'
      | 'deviceOemServerKey'
      | 'deviceOemClientCert'
      | 'deviceOemClientKey'
      | 'vehicleOemRootCert'
      | 'ktsPublicKey'
    >,
    options: Omit<
      DeviceOemBackendOptions,
      'serverCertPem' | 'serverKeyPem' | 'clientCertPem' | 'clientKeyPem' | 'vehicleOemRootPem' | 'ktsPublicKeyPem'
    >,
  ): DeviceOemBackend {
    return new DeviceOemBackend({
      serverCertPem: pki.deviceOemServerCert,
      serverKeyPem: pki.deviceOemServerKey,
      clientCertPem: pki.deviceOemClientCert,
      clientKeyPem: pki.deviceOemClientKey,
      vehicleOemRootPem: pki.vehicleOemRootCert,
      ktsPublicKeyPem: pki.ktsPublicKey,
      ...options,
    });
  }

  constructor(private readonly options: DeviceOemBackendOptions) {
    this.#ktsKey = options.ktsPublicKeyPem ? createPublicKey(options.ktsPublicKeyPem) : undefined;
    this.#history = options.history ?? DEFAULT_HISTORY;
    if (!Number.isSafeInteger(this.#history) || this.#history < 0)
      throw new RangeError('history must be a non-negative integer');
    this.invitations = new InvitationRelay(options.clock);
    this.shareBaseUrl = options.shareBaseUrl ?? 'https://wallet.device-oem.example';
    this.agent = new Agent({
      cert: options.clientCertPem,
      key: options.clientKeyPem,
      ca: options.vehicleOemRootPem,
      rejectUnauthorized: true,
      keepAlive: true,
    });
    this.server = createServer(
      {
        cert: options.serverCertPem,
        key: options.serverKeyPem,
        ca: options.vehicleOemRootPem,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      (req, res) => this.handle(req, res),
    );
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) =>
      this.server.listen(this.options.port ?? 9443, this.options.host ?? '127.0.0.1', resolve),
    );
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------------------------------------
  // Devices: which phone holds which key, and whether a push reaches it now
  // ---------------------------------------------------------------------------------------------

  /** A phone signs in with its Device OEM account; pushes about its keys go to it from now on. */
  enrollDevice(device: ManagedDevice, keyIds: readonly string[] = []): void {
    const record = this.#devices.get(device.deviceId) ?? {
      device,
      reachable: true,
      keys: new Set<string>(),
      pending: [],
    };
    this.#devices.set(device.deviceId, record);
    for (const keyId of keyIds) this.trackKey(device.deviceId, keyId);
  }

  /** Records that `deviceId` holds `keyId` (registration does it for the keys it registers). */
  trackKey(deviceId: string, keyId: string): void {
    const record = this.#device(deviceId);
    const id = keyId.toLowerCase();
    const previous = this.#holders.get(id);
    if (previous !== undefined) this.#devices.get(previous)?.keys.delete(id);
    record.keys.add(id);
    this.#holders.set(id, deviceId);
  }

  /** The keys a phone holds, as the backend knows them. */
  keysOf(deviceId: string): string[] {
    return [...this.#device(deviceId).keys];
  }

  /** The phone holding a key, if the backend knows it. */
  deviceHolding(keyId: string): string | undefined {
    return this.#holders.get(keyId.toLowerCase());
  }

  /**
   * Out of reach (switched off, airplane mode, a thief's pocket): pushes are held; back in reach,
   * the held ones are delivered in the order they came.
   */
  setDeviceReachable(deviceId: string, reachable: boolean): void {
    const record = this.#device(deviceId);
    record.reachable = reachable;
    if (!reachable) return;
    for (const notification of record.pending.splice(0)) record.device.applyKeyNotification(notification);
  }

  /** Whether pushes reach the phone now. */
  isDeviceReachable(deviceId: string): boolean {
    return this.#device(deviceId).reachable;
  }

  /** Pushes held for a phone out of reach. */
  pendingFor(deviceId: string): readonly KeyNotification[] {
    return [...this.#device(deviceId).pending];
  }

  toSnapshot(): DeviceOemSnapshot {
    return {
      devices: [...this.#devices].map(([deviceId, record]) => ({
        deviceId,
        reachable: record.reachable,
        keys: [...record.keys],
        pending: [...record.pending],
      })),
      keys: Object.fromEntries(
        [...this.#keyNotifications].map(([keyId, state]) => [
          keyId,
          { version: state.version, events: [...state.events] },
        ]),
      ),
    };
  }

  /**
   * Takes back a snapshot's records for the phones enrolled again (`enrollDevice`) before it;
   * records of phones no longer known are dropped.
   */
  restoreSnapshot(snapshot: DeviceOemSnapshot): void {
    for (const saved of snapshot.devices) {
      const record = this.#devices.get(saved.deviceId);
      if (!record) continue;
      for (const keyId of saved.keys) this.trackKey(saved.deviceId, keyId);
      record.pending.splice(0, record.pending.length, ...saved.pending.filter(isKeyNotification));
      record.reachable = saved.reachable;
    }
    for (const [keyId, saved] of Object.entries(snapshot.keys ?? {})) {
      if (!Number.isSafeInteger(saved?.version) || !Array.isArray(saved.events)) continue;
      const events = saved.events.filter((eventId) => typeof eventId === 'string').slice(-EVENTS_PER_KEY);
      this.#keyNotifications.set(keyId, { version: saved.version, events });
    }
    // An older saved state keeps its versions: anything older than them is still dropped as stale.
    for (const [keyId, version] of Object.entries((snapshot as LegacyDeviceOemSnapshot).keyVersions ?? {})) {
      if (Number.isSafeInteger(version) && !this.#keyNotifications.has(keyId))
        this.#keyNotifications.set(keyId, { version, events: [] });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Calls to the Vehicle OEM server
  // ---------------------------------------------------------------------------------------------

  /** Registers a device's key with the Vehicle OEM server (`POST /partner/v1/keys`, §3.4, §7 step 4). */
  async registerKey(request: KeyRegistrationRequest): Promise<KeyRegistration> {
    const response = await this.call<KeyRegistration>('POST', '/partner/v1/keys', {
      vehicleId: request.vehicleId,
      role: request.role,
      certificateChain: request.certificateChain.map((der) => Buffer.from(der).toString('base64')),
      ...(request.attestation ? { attestation: Buffer.from(request.attestation).toString('base64') } : {}),
      ...(request.deviceMetadata ? { deviceMetadata: request.deviceMetadata } : {}),
    });
    if (response.status !== 201) throw new PartnerCallError(response.status, response.body);
    if (request.deviceId !== undefined && this.#devices.has(request.deviceId)) {
      this.trackKey(request.deviceId, response.body.keyId);
    }
    return response.body;
  }

  /** The key's state as the Vehicle OEM server tracks it (`GET /partner/v1/keys/{keyId}`). */
  async getKey(keyId: string): Promise<PartnerKey> {
    checkKeyId(keyId);
    const response = await this.call<PartnerKey>('GET', `/partner/v1/keys/${keyId}`);
    if (response.status !== 200) throw new PartnerCallError(response.status, response.body);
    return response.body;
  }

  /** Lost mode: suspends every key the phone holds (`POST /partner/v1/keys/{keyId}/suspend`, §5). */
  async enterLostMode(deviceId: string, reason = 'device reported lost'): Promise<PartnerKey[]> {
    return this.#forEachKey(deviceId, 'suspend', reason);
  }

  /** Found: resumes every key the phone holds (`POST /partner/v1/keys/{keyId}/resume`, §5). */
  async exitLostMode(deviceId: string, reason = 'device found'): Promise<PartnerKey[]> {
    return this.#forEachKey(deviceId, 'resume', reason);
  }

  /** A key deleted in the Wallet, with the SE's termination proof (`POST /partner/v1/keys/{keyId}/terminate`, §5). */
  async terminateKey(
    keyId: string,
    terminationAttestation: string | undefined,
    reason = 'deleted in the wallet',
  ): Promise<PartnerKey> {
    checkKeyId(keyId);
    const response = await this.call<PartnerKey>('POST', `/partner/v1/keys/${keyId}/terminate`, {
      reason,
      ...(terminationAttestation === undefined ? {} : { terminationAttestation }),
    });
    if (response.status !== 200) throw new PartnerCallError(response.status, response.body);
    return response.body;
  }

  async #forEachKey(deviceId: string, operation: 'suspend' | 'resume', reason: string): Promise<PartnerKey[]> {
    const keys: PartnerKey[] = [];
    for (const keyId of this.keysOf(deviceId)) {
      checkKeyId(keyId);
      const response = await this.call<PartnerKey>('POST', `/partner/v1/keys/${keyId}/${operation}`, { reason });
      if (response.status !== 200) throw new PartnerCallError(response.status, response.body);
      keys.push(response.body);
    }
    return keys;
  }

  /** Calls the Vehicle OEM server's partner API. */
  call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<PartnerResponse<T>> {
    const started = Date.now();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.#vehicleOemBaseUrl()),
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            this.#log(this.calls, {
              direction: 'outbound',
              method,
              path,
              status,
              at: new Date(started).toISOString(),
              durationMs: Date.now() - started,
            });
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status, body: parsed as T });
          });
        },
      );
      req.on('error', (error) => {
        this.#log(this.calls, {
          direction: 'outbound',
          method,
          path,
          status: 0,
          at: new Date(started).toISOString(),
          durationMs: Date.now() - started,
        });
        reject(error);
      });
      req.end(payload);
    });
  }

  #vehicleOemBaseUrl(): string {
    const base = this.options.vehicleOemBaseUrl;
    return typeof base === 'string' ? base : base();
  }

  #device(deviceId: string): DeviceRecord {
    const record = this.#devices.get(deviceId);
    if (!record) throw new RangeError(`no device ${deviceId} is enrolled`);
    return record;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const peer = (req.socket as TLSSocket).getPeerCertificate?.()?.subject?.CN;
    const finish = (status: number, body: unknown, outcome?: string) => {
      this.#log(this.calls, {
        direction: 'inbound',
        method: req.method ?? '',
        path: req.url ?? '',
        status,
        at: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        peer: typeof peer === 'string' ? peer : undefined,
        ...(outcome ? { outcome } : {}),
      });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/notifications') return finish(404, { error: 'not found' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return finish(400, { error: 'body must be JSON' }, 'refused: not JSON');
      }
      // A refusal thrown by #accept becomes the rejection.
      new Promise<NotificationDisposition | undefined>((resolve) => resolve(this.#accept(body))).then(
        (disposition) => {
          this.#log(this.notifications, body);
          finish(202, { accepted: true, ...(disposition ? { disposition } : {}) }, disposition ?? 'recorded');
        },
        (error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          // A refusal is final (the server stops retrying on 4xx); anything else may be retried.
          if (error instanceof NotificationRefusal) finish(400, { error: message }, `refused: ${message}`);
          else finish(500, { error: 'the notification could not be applied' }, `failed: ${message}`);
        },
      );
    });
  }

  /** Appends to a log, keeping between `history` and twice `history` of the newest entries. */
  #log<T>(log: T[], entry: T): void {
    if (this.#history === 0) return;
    log.push(entry);
    if (log.length >= 2 * this.#history) log.splice(0, log.length - this.#history);
  }

  /**
   * Verifies a notification against the pinned KTS key, then deduplicates it by `eventId`,
   * ignores it if an older `keyVersion` than one already taken for the key, and pushes it to the
   * phone holding the key (or holds it for a phone out of reach). Without a pinned key it only
   * records (`undefined`).
   */
  #accept(body: unknown): NotificationDisposition | undefined {
    if (!this.#ktsKey) return undefined;
    const jws = (body as { notification?: unknown } | null)?.notification;
    if (typeof jws !== 'string') throw new NotificationRefusal('notification must be a compact JWS');
    let payload: unknown;
    try {
      const verified = verifyCompactJws(jws, this.#ktsKey);
      if (verified.header.typ !== NOTIFICATION_JWS_TYPE) throw new Error('typ');
      payload = JSON.parse(verified.payload.toString('utf8'));
    } catch {
      throw new NotificationRefusal('the notification is not signed by the pinned KTS key');
    }
    if (!isKeyNotification(payload)) throw new NotificationRefusal('the notification payload is malformed');
    const notification = payload;
    const record = (disposition: NotificationDisposition, deviceId?: string): NotificationDisposition => {
      const received: ReceivedNotification = {
        notification,
        disposition,
        ...(deviceId === undefined ? {} : { deviceId }),
        at: new Date().toISOString(),
      };
      this.#log(this.received, received);
      this.options.onNotification?.(received);
      return disposition;
    };
    // From here on nothing awaits: the checks and the updates below cannot interleave with another request.
    const known = this.#keyNotifications.get(notification.keyId);
    if (known?.events.includes(notification.eventId)) return record('duplicate');
    const remember = (): KeyNotificationState => {
      const state = known ?? { version: notification.keyVersion, events: [] };
      if (!known) this.#keyNotifications.set(notification.keyId, state);
      state.events.push(notification.eventId);
      if (state.events.length > EVENTS_PER_KEY) state.events.shift();
      return state;
    };
    // Equal versions are not stale: a change that keeps the state (ACCESS_PROFILE_CHANGED) may reuse it.
    if (known && notification.keyVersion < known.version) {
      remember();
      return record('stale');
    }
    const taken = (): void => {
      const state = remember();
      state.version = Math.max(state.version, notification.keyVersion);
    };
    const deviceId = this.#holders.get(notification.keyId);
    const device = deviceId === undefined ? undefined : this.#devices.get(deviceId);
    if (!deviceId || !device) {
      taken();
      return record('no-device');
    }
    if (!device.reachable) {
      device.pending.push(notification);
      taken();
      return record('queued', deviceId);
    }
    // If the phone throws, nothing is marked taken: the server's retry applies it again.
    device.device.applyKeyNotification(notification);
    taken();
    return record('applied', deviceId);
  }
}

function checkKeyId(keyId: string): void {
  if (!KEY_ID.test(keyId)) throw new RangeError('keyId must be 12-16 lower-case hex digits');
}

function isKeyNotification(value: unknown): value is KeyNotification {
  const n = value as KeyNotification | null;
  return (
    typeof n === 'object' &&
    n !== null &&
    typeof n.eventId === 'string' &&
    n.eventId.length > 0 &&
    (KEY_NOTIFICATION_TYPES as readonly string[]).includes(n.type) &&
    typeof n.keyId === 'string' &&
    KEY_ID.test(n.keyId) &&
    typeof n.vehicleId === 'string' &&
    /^[0-9a-f]{16}$/.test(n.vehicleId) &&
    Number.isSafeInteger(n.keyVersion) &&
    typeof n.state === 'string' &&
    typeof n.occurredAt === 'string' &&
    (n.revocationRelay === undefined || isRevocationRelay(n.revocationRelay)) &&
    (n.type !== 'REVOCATION_RELAY' || n.revocationRelay !== undefined)
  );
}

function isRevocationRelay(value: unknown): value is KeyNotification['revocationRelay'] {
  const relay = value as { keyListVersion?: unknown; keyIds?: unknown } | null;
  return (
    typeof relay === 'object' &&
    relay !== null &&
    Number.isSafeInteger(relay.keyListVersion) &&
    (relay.keyListVersion as number) >= 0 &&
    Array.isArray(relay.keyIds) &&
    relay.keyIds.length <= REVOCATION_RELAY_MAX_KEYS &&
    relay.keyIds.every((keyId) => typeof keyId === 'string' && /^[0-9a-f]{16}$/.test(keyId))
  );
}
