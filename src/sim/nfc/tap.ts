import type { TransactionCode } from '../../protocol/transaction.js';
import type { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import type {
  ReaderLocation,
  TransactionEvent,
  TransactionReason,
  TransactionResult,
  TransactionType,
} from '../vehicle/vehicle-events.js';
import type { ContactlessCard } from './contactless.js';
import { NfcLink, type NfcLinkOptions, type TranscriptEntry } from './nfc-link.js';

export interface TapOptions extends NfcLinkOptions {
  /** Reuse a link (its card must be `device`); by default each tap gets a fresh one. */
  readonly link?: NfcLink;
}

export interface TapOutcome {
  readonly result: TransactionResult;
  readonly transaction: TransactionType;
  readonly reason: TransactionReason;
  readonly keyId?: string;
  /** Car-side duration from the event log. */
  readonly durationMicros: number;
  /** Wall time of the tap, link latency and timeouts included. */
  readonly wallMicros: number;
  readonly apduCount: number;
  readonly event: TransactionEvent;
  /** The APDUs on the air when the link records (`record: true`). */
  readonly transcript: readonly TranscriptEntry[];
}

/**
 * Holds `device` to one of `car`'s readers: the reader polls with its ECP frame, runs the whole
 * transaction for `action` over an in-memory NFC link, and the phone leaves the field at the end.
 */
export async function tap(
  device: ContactlessCard,
  car: SimulatedVehicle,
  reader: ReaderLocation,
  action: TransactionCode,
  options: TapOptions = {},
): Promise<TapOutcome> {
  const link = options.link ?? new NfcLink(device, options);
  const before = link.apduCount;
  const transcriptStart = link.transcript.length;
  const started = performance.now();
  let event: TransactionEvent;
  try {
    event = await car.reader(reader).transact(link, action);
  } finally {
    link.loseField();
  }
  return {
    result: event.result,
    transaction: event.transaction,
    reason: event.reason,
    ...(event.keyId ? { keyId: event.keyId } : {}),
    durationMicros: event.durationMicros,
    wallMicros: (performance.now() - started) * 1000,
    apduCount: link.apduCount - before,
    event,
    transcript: link.transcript.slice(transcriptStart),
  };
}
