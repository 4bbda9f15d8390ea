import { fromHex, toHex } from '../../protocol/bytes.js';
import { KEY_ROLE_CODES, type KeyRole } from '../../protocol/certificate-extensions.js';
import { P256PublicKey } from '../../protocol/crypto/p256.js';
import { decodeEntitlements, encodeEntitlements, type Entitlements } from '../../protocol/entitlements.js';
import { ProtocolError } from '../../protocol/errors.js';
import { keyIdentifier as computeKeyIdentifier, type KeyIdentifierProfile } from '../../protocol/identifiers.js';
import {
  keyListDigest,
  keyListLine,
  type SyncKeyEntry,
  type TelematicsCommand,
} from '../../protocol/telematics-messages.js';
import {
  matchFastCryptogram,
  type FastCandidate,
  type FastKeys,
  type TransactionContext,
} from '../../protocol/transaction.js';
import { TelematicsRejection } from './telematics-unit.js';
import type { CarKeyState, KeyListChange, KeyListSource, VehicleEventLog } from './vehicle-events.js';

/** One endpoint on the car's allow-list. Held only inside the car (it carries Kpersistent). */
export interface EndpointEntry {
  readonly keyIdentifier: Buffer;
  readonly keyId: string;
  /** Imported once; verification reuses the KeyObject. */
  readonly publicKey: P256PublicKey;
  role: KeyRole;
  entitlements: Entitlements;
  state: CarKeyState;
  kpersistent: Buffer | undefined;
  lastUsedAt: number | undefined;
  /** SHA-256 of the endpoint certificate received at owner pairing: what a KTS receipt binds (§3.4). */
  certificateDigest: Buffer | undefined;
}

/** A read-only view of an allow-list entry, without secrets. */
export interface EndpointSummary {
  readonly keyId: string;
  readonly endpointPublicKey: Buffer;
  readonly role: KeyRole;
  readonly entitlements: Entitlements;
  readonly state: CarKeyState;
  readonly hasKpersistent: boolean;
  readonly lastUsedAt?: number;
  /** Paired with this car over NFC (§3.4), so a KTS receipt can activate it. */
  readonly pairedLocally: boolean;
}

export interface EnrollEndpointRequest {
  /** 65-byte uncompressed point. */
  readonly endpointPublicKey: Uint8Array;
  readonly role: KeyRole;
  readonly entitlements: Entitlements;
  /** Default `active`; pairing stores a new owner as `pending` (§3.4). */
  readonly state?: Exclude<CarKeyState, 'terminated'>;
  /** Owner pairing: SHA-256 of the endpoint certificate DER the device delivered (§3.4). */
  readonly endpointCertificateDigest?: Uint8Array;
}

const CAR_KEY_STATES: readonly CarKeyState[] = ['pending', 'active', 'suspended', 'terminated'];

/** Server states mapped onto the car's: a `terminating` key is one the car must now terminate. */
function carStateOf(state: string | undefined): CarKeyState {
  if (state === 'terminating') return 'terminated';
  if (state !== undefined && (CAR_KEY_STATES as readonly string[]).includes(state)) return state as CarKeyState;
  throw new TelematicsRejection(`unknown key state ${String(state)}`);
}

/** One allow-list entry as a snapshot holds it (hex fields; Kpersistent included). */
export interface EndpointEntrySnapshot {
  endpointPublicKey: string;
  role: KeyRole;
  /** §6 TLV, hex. */
  entitlements: string;
  state: CarKeyState;
  kpersistent?: string;
  lastUsedAt?: number;
  certificateDigest?: string;
}

/** The whole key list: entries in fast-path order first, the deny-list, the version. */
export interface KeyListSnapshot {
  entries: EndpointEntrySnapshot[];
  /** Key ids holding a Kpersistent, most recently used first. */
  recentUse: string[];
  denied: string[];
  version: number;
}

interface Candidate extends FastCandidate {
  readonly entry: EndpointEntry;
}

/**
 * The car's allow-list (endpoint → public key, role, entitlements, state, Kpersistent), its
 * deny-list of revoked key identifiers, and the key-list version that only moves forward (§5).
 * Revocation and suspension delete the endpoint's Kpersistent at once (§4.4).
 */
export class VehicleKeyList {
  readonly #entries = new Map<string, EndpointEntry>();
  readonly #denied = new Set<string>();
  /** Endpoints holding a Kpersistent, most recently used first: the fast-path search order. */
  #byRecentUse: EndpointEntry[] = [];
  #version = 0;

  constructor(
    private readonly profile: KeyIdentifierProfile,
    private readonly log: VehicleEventLog,
    private readonly clock: () => number,
  ) {}

  get version(): number {
    return this.#version;
  }

  /** The version only moves forward (§5). */
  advanceVersion(version: number): void {
    if (Number.isSafeInteger(version) && version > this.#version) this.#version = version;
  }

  enroll(request: EnrollEndpointRequest, source: KeyListSource = 'local'): string {
    if (!(request.role in KEY_ROLE_CODES)) throw new ProtocolError('unsupported', `unknown role ${request.role}`);
    const publicKey = P256PublicKey.fromPoint(request.endpointPublicKey);
    const keyIdentifier = computeKeyIdentifier(publicKey.point, this.profile);
    const keyId = toHex(keyIdentifier);
    if (this.#denied.has(keyId)) throw new ProtocolError('bad-state', `key ${keyId} is on the deny-list`);
    const state = request.state ?? 'active';
    const existing = this.#entries.get(keyId);
    if (existing) {
      existing.role = request.role;
      existing.entitlements = request.entitlements;
      if (request.endpointCertificateDigest)
        existing.certificateDigest = Buffer.from(request.endpointCertificateDigest);
      this.#setState(existing, state, source);
    } else {
      this.#entries.set(keyId, {
        keyIdentifier,
        keyId,
        publicKey,
        role: request.role,
        entitlements: request.entitlements,
        state,
        kpersistent: undefined,
        lastUsedAt: undefined,
        certificateDigest: request.endpointCertificateDigest
          ? Buffer.from(request.endpointCertificateDigest)
          : undefined,
      });
    }
    this.#record('added', keyId, source, state);
    return keyId;
  }

  setState(keyId: string, state: CarKeyState, source: KeyListSource = 'local'): void {
    const entry = this.#entries.get(keyId);
    if (state === 'terminated') {
      this.deny(keyId, source);
      return;
    }
    if (!entry) return this.#record('state', keyId, source, state, 'unknown key, ignored');
    if (entry.state === 'terminated') return this.#record('state', keyId, source, 'terminated', 'terminated is final');
    this.#setState(entry, state, source);
    this.#record('state', keyId, source, state);
  }

  /** A pending owner becomes active on a valid KTS receipt (§3.4); other states are left alone. */
  activatePending(entry: EndpointEntry, source: KeyListSource): boolean {
    if (entry.state !== 'pending' || this.#denied.has(entry.keyId)) return false;
    this.#setState(entry, 'active', source);
    this.#record('state', entry.keyId, source, 'active');
    return true;
  }

  setEntitlements(keyId: string, entitlements: Entitlements, source: KeyListSource = 'local'): void {
    const entry = this.#entries.get(keyId);
    if (!entry) return this.#record('entitlements', keyId, source, undefined, 'unknown key, ignored');
    entry.entitlements = entitlements;
    this.#record('entitlements', keyId, source, entry.state);
  }

  /** Revokes a key, known or not: terminated, deny-listed, Kpersistent gone. */
  deny(keyId: string, source: KeyListSource): void {
    const entry = this.#entries.get(keyId);
    if (entry) this.#setState(entry, 'terminated', source);
    if (this.#denied.has(keyId)) return;
    this.#denied.add(keyId);
    this.#record('denied', keyId, source, 'terminated');
  }

  isDenied(keyId: string): boolean {
    return this.#denied.has(keyId);
  }

  get(keyId: string): EndpointEntry | undefined {
    return this.#entries.get(keyId);
  }

  summaries(): EndpointSummary[] {
    return [...this.#entries.values()].map(summarise);
  }

  forgetKpersistent(entry: EndpointEntry, source: KeyListSource = 'local'): void {
    if (!entry.kpersistent) return;
    entry.kpersistent.fill(0);
    entry.kpersistent = undefined;
    this.#byRecentUse = this.#byRecentUse.filter((other) => other !== entry);
    this.#record('kpersistent-deleted', entry.keyId, source, entry.state);
  }

  /** §4.3: after an authenticated standard transaction the new Kpersistent replaces the old one. */
  storeKpersistent(entry: EndpointEntry, kpersistent: Uint8Array): void {
    entry.kpersistent?.fill(0);
    entry.kpersistent = Buffer.from(kpersistent);
    this.touch(entry);
  }

  touch(entry: EndpointEntry): void {
    entry.lastUsedAt = this.clock();
    if (!entry.kpersistent || this.#byRecentUse[0] === entry) return;
    const index = this.#byRecentUse.indexOf(entry);
    if (index >= 0) this.#byRecentUse.splice(index, 1);
    this.#byRecentUse.unshift(entry);
  }

  /** §4.4: each active endpoint's Kpersistent, most recently used first, compared in constant time. */
  matchFast(
    context: TransactionContext,
    readerLongTermPublicKey: Buffer,
    cryptogram: Buffer,
  ): { entry: EndpointEntry; keys: FastKeys } | undefined {
    const match = matchFastCryptogram(this.#candidates(), context, readerLongTermPublicKey, cryptogram);
    if (!match) return undefined;
    this.touch(match.candidate.entry);
    return { entry: match.candidate.entry, keys: match.keys };
  }

  /**
   * The revocation relay (§4.7, §5): revocations an owner's phone carries to an offline car,
   * applied when the owner's mailbox holds a key-list version newer than the car's. Returns the
   * key ids newly deny-listed (the car reports them to the server).
   */
  applyRevocationRelay(presenter: EndpointEntry, version: bigint, keyIdentifiers: readonly Buffer[]): string[] {
    if (presenter.role !== 'owner' || keyIdentifiers.length === 0) return [];
    if (version <= BigInt(this.#version) || version > BigInt(Number.MAX_SAFE_INTEGER)) return [];
    const revoked: string[] = [];
    for (const keyIdentifier of keyIdentifiers) {
      const keyId = toHex(keyIdentifier);
      if (keyId === presenter.keyId || this.#denied.has(keyId)) continue;
      this.deny(keyId, 'relay');
      revoked.push(keyId);
    }
    this.advanceVersion(Number(version));
    return revoked;
  }

  /** Sorted `keyId‖state` lines of every endpoint the car holds, terminated ones included. */
  lines(): string[] {
    return [...this.#entries.values()].map((entry) => keyListLine(entry.keyId, entry.state)).sort();
  }

  /** The telematics ack's `keyListDigest` (§8): over the active and suspended endpoints. */
  digest(): string {
    return keyListDigest(this.#entries.values());
  }

  /**
   * ADD_KEY / SET_STATE / SET_ENTITLEMENTS from the server (§8). A malformed command is refused
   * (the server sees the rejection); a command about a key the car does not know is a no-op.
   */
  applyTelematicsCommand(command: TelematicsCommand): void {
    switch (command.cmd) {
      case 'ADD_KEY':
        this.#addKey(command, command.state ?? 'active');
        break;
      case 'SET_STATE':
        this.setState(requireField(command, 'keyId'), carStateOf(command.state), 'telematics');
        break;
      case 'SET_ENTITLEMENTS':
        this.setEntitlements(requireField(command, 'keyId'), decodeEntitlementsField(command), 'telematics');
        break;
      case 'SYNC':
        this.#sync(command);
        break;
      case 'PAIRING_VERIFIER':
        // The car's pairing mode takes the verifier (§3.1).
        break;
    }
    this.advanceVersion(command.keyListVersion);
  }

  /** ADD_KEY, or a live key of a SYNC the car does not hold: checked against its public key first. */
  #addKey(fields: AddKeyFields, serverState: string): void {
    const keyId = requireField(fields, 'keyId');
    const endpointPublicKey = decodeHexField(fields, 'endpointPublicKey');
    const role = fields.role ?? 'friend';
    if (role !== 'owner' && role !== 'friend') throw new TelematicsRejection(`unknown role ${role}`);
    const state = carStateOf(serverState);
    if (state === 'terminated') throw new TelematicsRejection(`${fields.cmd} cannot add a terminated key`);
    let computed: string;
    try {
      computed = toHex(computeKeyIdentifier(P256PublicKey.fromPoint(endpointPublicKey).point, this.profile));
    } catch {
      throw new TelematicsRejection('endpointPublicKey is not a P-256 point');
    }
    if (computed !== keyId) throw new TelematicsRejection('keyId does not match endpointPublicKey');
    if (this.#denied.has(keyId)) throw new TelematicsRejection(`key ${keyId} is on the deny-list`);
    this.enroll({ endpointPublicKey, role, entitlements: decodeEntitlementsField(fields), state }, 'telematics');
  }

  /**
   * A full SYNC (§8): the server's list aligns every key it names — terminated ones are revoked,
   * live ones take the server's state and entitlements, and a live key the car lost is re-added.
   * Keys the server does not name are left alone (the car reports what it enrolled itself).
   */
  #sync(command: TelematicsCommand): void {
    const keys: unknown = command.keys ?? [];
    if (!Array.isArray(keys)) throw new TelematicsRejection('SYNC keys must be a list');
    // Checked whole before anything is applied: a malformed SYNC changes nothing.
    const entries = (keys as unknown[]).map((raw) => {
      const entry = raw as SyncKeyEntry | null;
      if (typeof entry !== 'object' || entry === null || typeof entry.keyId !== 'string' || !KEY_ID.test(entry.keyId)) {
        throw new TelematicsRejection('SYNC entry needs a keyId');
      }
      return { entry, state: carStateOf(entry.state) };
    });
    for (const { entry, state } of entries) {
      const known = this.#entries.get(entry.keyId);
      if (state === 'terminated' || this.#denied.has(entry.keyId)) {
        if (state === 'terminated') this.deny(entry.keyId, 'telematics');
        continue;
      }
      if (!known) {
        this.#addKey({ ...entry, cmd: 'SYNC' }, state);
        continue;
      }
      if (entry.entitlements !== undefined) {
        known.entitlements = decodeEntitlementsField({ ...entry, cmd: 'SYNC' });
      }
      if (known.state !== state) this.setState(entry.keyId, state, 'telematics');
    }
  }

  /** Everything the list holds, Kpersistent included: only for sealed persistence. */
  toSnapshot(): KeyListSnapshot {
    return {
      entries: [...this.#entries.values()].map((entry) => ({
        endpointPublicKey: toHex(entry.publicKey.point),
        role: entry.role,
        entitlements: toHex(encodeEntitlements(entry.entitlements)),
        state: entry.state,
        ...(entry.kpersistent ? { kpersistent: toHex(entry.kpersistent) } : {}),
        ...(entry.lastUsedAt === undefined ? {} : { lastUsedAt: entry.lastUsedAt }),
        ...(entry.certificateDigest ? { certificateDigest: toHex(entry.certificateDigest) } : {}),
      })),
      recentUse: this.#byRecentUse.map((entry) => entry.keyId),
      denied: [...this.#denied],
      version: this.#version,
    };
  }

  /** Replaces the list's contents with a snapshot's (nothing is logged). */
  restoreSnapshot(snapshot: KeyListSnapshot): void {
    this.#entries.clear();
    this.#denied.clear();
    for (const saved of snapshot.entries) {
      if (!(saved.role in KEY_ROLE_CODES) || !CAR_KEY_STATES.includes(saved.state)) {
        throw new RangeError('the key list snapshot holds an invalid entry');
      }
      const publicKey = P256PublicKey.fromPoint(fromHex(saved.endpointPublicKey));
      const keyIdentifier = computeKeyIdentifier(publicKey.point, this.profile);
      const keyId = toHex(keyIdentifier);
      this.#entries.set(keyId, {
        keyIdentifier,
        keyId,
        publicKey,
        role: saved.role,
        entitlements: decodeEntitlements(fromHex(saved.entitlements)),
        state: saved.state,
        kpersistent: saved.kpersistent === undefined ? undefined : fromHex(saved.kpersistent),
        lastUsedAt: saved.lastUsedAt,
        certificateDigest: saved.certificateDigest === undefined ? undefined : fromHex(saved.certificateDigest),
      });
    }
    for (const keyId of snapshot.denied) this.#denied.add(keyId);
    this.#byRecentUse = snapshot.recentUse.flatMap((keyId) => {
      const entry = this.#entries.get(keyId);
      return entry?.kpersistent ? [entry] : [];
    });
    this.#version = 0;
    this.advanceVersion(snapshot.version);
  }

  *#candidates(): Generator<Candidate> {
    for (const entry of this.#byRecentUse) {
      if (entry.state === 'active' && entry.kpersistent) {
        yield { kpersistent: entry.kpersistent, endpointLongTermPublicKey: entry.publicKey.point, entry };
      }
    }
  }

  #setState(entry: EndpointEntry, state: CarKeyState, source: KeyListSource): void {
    entry.state = state;
    // §4.4: a suspended or revoked endpoint's Kpersistent is deleted at once (logged with the change's source).
    if (state === 'suspended' || state === 'terminated') this.forgetKpersistent(entry, source);
  }

  #record(change: KeyListChange, keyId: string, source: KeyListSource, state?: CarKeyState, detail?: string): void {
    this.log.append({
      kind: 'key-list',
      at: this.clock(),
      change,
      keyId,
      source,
      ...(state ? { state } : {}),
      ...(detail ? { detail } : {}),
    });
  }
}

function summarise(entry: EndpointEntry): EndpointSummary {
  return {
    keyId: entry.keyId,
    endpointPublicKey: Buffer.from(entry.publicKey.point),
    role: entry.role,
    entitlements: entry.entitlements,
    state: entry.state,
    hasKpersistent: entry.kpersistent !== undefined,
    ...(entry.lastUsedAt === undefined ? {} : { lastUsedAt: entry.lastUsedAt }),
    pairedLocally: entry.certificateDigest !== undefined,
  };
}

/** The fields an ADD_KEY carries; a SYNC entry carries the same ones. */
type AddKeyFields = Pick<TelematicsCommand, 'cmd' | 'keyId' | 'endpointPublicKey' | 'entitlements' | 'role'>;

const KEY_ID = /^[0-9a-f]{12,16}$/;

function requireField(command: AddKeyFields, field: 'keyId' | 'endpointPublicKey' | 'entitlements'): string {
  const value = command[field];
  if (typeof value !== 'string' || value.length === 0) throw new TelematicsRejection(`${command.cmd} needs ${field}`);
  return field === 'keyId' ? value.toLowerCase() : value;
}

function decodeHexField(command: AddKeyFields, field: 'endpointPublicKey' | 'entitlements'): Buffer {
  try {
    return fromHex(requireField(command, field));
  } catch (error) {
    if (error instanceof TelematicsRejection) throw error;
    throw new TelematicsRejection(`${field} is not hex`);
  }
}

function decodeEntitlementsField(command: AddKeyFields): Entitlements {
  const bytes = decodeHexField(command, 'entitlements');
  try {
    return decodeEntitlements(bytes);
  } catch {
    throw new TelematicsRejection('entitlements are not a valid §6 TLV');
  }
}
