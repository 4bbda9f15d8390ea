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
export type KeyListSource = 'telematics' | 'relay' | 'local';

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

export type VehicleEvent = TransactionEvent | KeyListEvent;

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

  /** Calls `listener` for every later event; returns the unsubscribe function. */
  subscribe(listener: (event: VehicleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
