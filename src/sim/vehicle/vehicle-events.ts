import type { KeyRole } from '../../protocol/certificate-extensions.js';
import type { READER_LOCATION } from '../../protocol/ecp.js';
import type { EntitlementDenialReason } from '../../protocol/entitlements.js';
import type { TransactionCode } from '../../protocol/transaction.js';

/** Reader positions of §4.1: door (0), dashboard/console (1), trunk (2). */
export type ReaderLocation = keyof typeof READER_LOCATION;

/** Car key states (§5); `terminating` is the server's "not yet acknowledged by the car". */
export type CarKeyState = 'pending' | 'active' | 'suspended' | 'terminated';

export type TransactionType = 'standard' | 'fast' | 'none';
export type TransactionResult = 'granted' | 'denied' | 'failed';

/** Why a transaction ended as it did; `none` when granted. */
export type TransactionReason =
  | 'none'
  | 'key-unknown'
  | 'key-pending'
  | 'key-suspended'
  | 'key-revoked'
  | 'bad-device-signature'
  | EntitlementDenialReason
  | 'no-device'
  | 'field-lost'
  | 'timeout'
  | 'device-refused'
  | 'no-common-version'
  | 'secure-channel-failure'
  | 'protocol-error';

/** Drive limits handed to the ECU with an engine start (§6). */
export interface DriveLimits {
  readonly maxSpeedKmh?: number;
  readonly maxPowerPercent?: number;
  readonly maxVolume?: number;
}

/** One tap, as the car decided it. */
export interface TransactionEvent {
  readonly kind: 'transaction';
  /** Unix milliseconds (car clock). */
  readonly at: number;
  readonly reader: ReaderLocation;
  readonly action: TransactionCode;
  readonly transaction: TransactionType;
  readonly result: TransactionResult;
  readonly reason: TransactionReason;
  /** Who: set once the endpoint is authenticated (fast cryptogram or device signature). */
  readonly keyId?: string;
  readonly role?: KeyRole;
  /** Car-side processing time of the whole transaction, link included. */
  readonly durationMicros: number;
  /** Reported to the ECU with a granted engine start. */
  readonly driveLimits?: DriveLimits;
  /** Whether CONTROL FLOW reached the device. */
  readonly deviceNotified: boolean;
  readonly detail?: string;
}

export type KeyListChange = 'added' | 'state' | 'entitlements' | 'denied' | 'kpersistent-deleted';
/** Who changed the key list: the server, an owner's relay, the car itself, owner pairing (§3.4), a KTS receipt or a friend attestation (§7 step 5). */
export type KeyListSource = 'telematics' | 'relay' | 'local' | 'pairing' | 'kts-receipt' | 'friend-attestation';

/** A change to the car's allow-list or deny-list. */
export interface KeyListEvent {
  readonly kind: 'key-list';
  readonly at: number;
  readonly change: KeyListChange;
  readonly keyId: string;
  readonly state?: CarKeyState;
  readonly source: KeyListSource;
  readonly detail?: string;
}

/** How a pairing attempt (or a verifier delivery) ended, §3. */
export type PairingResult = 'verifier-installed' | 'paired' | 'refused' | 'failed';
export type PairingReason =
  | 'none'
  /** No verifier: the car is not in pairing mode (9484). */
  | 'no-verifier'
  /** Seven failed attempts; a new verifier is needed (§3.1 step 5, 9484). */
  | 'attempts-exhausted'
  /** The device has no pairing password entered (`D4` 00, 9484). */
  | 'device-not-ready'
  /** The car has no vehicle certificate or root to write (§3.4). */
  | 'not-provisioned'
  | 'no-common-version'
  /** X not on the curve or the identity (OP CONTROL FLOW 0C, §3.3). */
  | 'invalid-point'
  /** The device refused the car's evidence, or its own evidence was wrong. */
  | 'wrong-password'
  | 'device-refused'
  | 'chain-refused'
  | 'wrong-vehicle'
  | 'no-device'
  | 'field-lost'
  | 'timeout'
  | 'secure-channel-failure'
  | 'protocol-error';

/** A pairing attempt, or a verifier the car received (§3.1, §3.3–3.4). */
export interface PairingEvent {
  readonly kind: 'pairing';
  readonly at: number;
  readonly result: PairingResult;
  readonly reason: PairingReason;
  /** The attempt's outcome as a §3.2 status word: 9000, 9484 (not ready / exhausted), 6A80, …; none when the link failed. */
  readonly sw?: number;
  readonly pairingSessionId?: string;
  /** The new owner endpoint, stored as pending. */
  readonly keyId?: string;
  /** Failed attempts against the current verifier after this event. */
  readonly failedAttempts: number;
  readonly durationMicros?: number;
  /** Whether OP CONTROL FLOW reached the device. */
  readonly deviceNotified?: boolean;
  readonly detail?: string;
}

export type VehicleEvent = TransactionEvent | KeyListEvent | PairingEvent;

export const DEFAULT_EVENT_LOG_CAPACITY = 10_000;

/** Append-only event log with a bounded memory (a ring: the oldest entries go first). */
export class VehicleEventLog {
  readonly #capacity: number;
  readonly #ring: VehicleEvent[] = [];
  #next = 0;
  #total = 0;
  readonly #listeners = new Set<(event: VehicleEvent) => void>();

  constructor(capacity = DEFAULT_EVENT_LOG_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('event log capacity must be ≥ 1');
    this.#capacity = capacity;
  }

  /** Events appended since the car was created, including those the ring has dropped. */
  get total(): number {
    return this.#total;
  }

  append(event: VehicleEvent): void {
    if (this.#ring.length < this.#capacity) this.#ring.push(event);
    else this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.#capacity;
    this.#total++;
    for (const listener of this.#listeners) listener(event);
  }

  /** Oldest first. */
  entries(): VehicleEvent[] {
    if (this.#ring.length < this.#capacity) return [...this.#ring];
    return [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
  }

  transactions(): TransactionEvent[] {
    return this.entries().filter((event): event is TransactionEvent => event.kind === 'transaction');
  }

  lastTransaction(): TransactionEvent | undefined {
    return this.transactions().at(-1);
  }

  pairings(): PairingEvent[] {
    return this.entries().filter((event): event is PairingEvent => event.kind === 'pairing');
  }

  /** The entries (oldest first) and the running total, for persistence. */
  toSnapshot(): { entries: VehicleEvent[]; total: number } {
    return { entries: this.entries(), total: this.#total };
  }

  /** Replaces the log with a snapshot's entries (listeners are not called). */
  restoreSnapshot(snapshot: { entries: readonly VehicleEvent[]; total: number }): void {
    const entries = snapshot.entries.slice(-this.#capacity);
    this.#ring.splice(0, this.#ring.length, ...entries);
    this.#next = this.#ring.length % this.#capacity;
    this.#total = Math.max(snapshot.total, entries.length);
  }

  /** Calls `listener` for every later event; returns the unsubscribe function. */
  subscribe(listener: (event: VehicleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
