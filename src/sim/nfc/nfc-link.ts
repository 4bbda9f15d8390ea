import { setTimeout as delay } from 'node:timers/promises';
import type { ContactlessCard, ReaderTransport } from './contactless.js';

/** How an APDU exchange failed on the air interface. */
export type NfcLinkFailure = 'field-lost' | 'timeout' | 'no-device';

export class NfcLinkError extends Error {
  override readonly name = 'NfcLinkError';

  constructor(
    readonly failure: NfcLinkFailure,
    message: string,
  ) {
    super(message);
  }
}

/** Which half of an APDU exchange the field is lost in ("tearing"). */
export type TearPoint = 'command' | 'response';

/** What a tearing hook or an interceptor learns about the exchange in flight. */
export interface ApduExchangeInfo {
  /** 0-based index of the APDU since the link was created. */
  readonly index: number;
  /** INS byte of the command (0 when shorter than a header). */
  readonly ins: number;
}

export interface NfcLinkOptions {
  /** One-way air latency per frame, milliseconds (0 = none, no timers at all). */
  readonly latencyMs?: number;
  /**
   * Per-APDU timeout seen by the reader, milliseconds: a lost frame costs this long, and a
   * response later than this (air latency plus card time) is discarded. 0 = no deadline and
   * lost frames noticed at once (fast tests).
   */
  readonly timeoutMs?: number;
  /** Deterministic tearing: return where this exchange is cut, or undefined to deliver it. */
  readonly tear?: (info: ApduExchangeInfo) => TearPoint | undefined;
  /** Probabilistic tearing for demos: chance per APDU that the field is lost (half before, half after the card). */
  readonly fieldLossProbability?: number;
  /** Randomness for `fieldLossProbability`, in [0, 1). */
  readonly random?: () => number;
  /** Rewrites a command on its way to the card (an attacker in the field). */
  readonly interceptCommand?: (command: Buffer, info: ApduExchangeInfo) => Buffer;
  /** Rewrites a response on its way back to the reader. */
  readonly interceptResponse?: (response: Buffer, info: ApduExchangeInfo) => Buffer;
  /** Keep every command and response (as seen on the air) in `transcript`. */
  readonly record?: boolean;
}

export interface TranscriptEntry {
  readonly command: Buffer;
  /** Undefined when the response never came back. */
  readonly response?: Buffer;
}

export const DEFAULT_APDU_TIMEOUT_MS = 200;

/** Tear the first exchange whose INS is `ins` (the `occurrence`-th one, 1-based). */
export function tearAt(
  ins: number,
  point: TearPoint,
  occurrence = 1,
): (info: ApduExchangeInfo) => TearPoint | undefined {
  let seen = 0;
  return (info) => {
    if (info.ins !== ins) return undefined;
    seen++;
    return seen === occurrence ? point : undefined;
  };
}

/**
 * An in-memory ISO 14443 link between one reader and one phone: the reader polls with the ECP
 * frame (which powers the field and wakes the phone), then exchanges APDUs. Frames can be
 * delayed, cut (tearing: the command never arrives, or its response never returns), or
 * rewritten. Any loss takes the field down: the card drops its session, as a real SE loses
 * power, and the reader must poll again.
 */
export class NfcLink implements ReaderTransport {
  readonly transcript: TranscriptEntry[] = [];
  readonly #card: ContactlessCard;
  readonly #options: NfcLinkOptions;
  readonly #latencyMs: number;
  readonly #timeoutMs: number;
  #fieldOn = false;
  #index = 0;

  constructor(card: ContactlessCard, options: NfcLinkOptions = {}) {
    this.#card = card;
    this.#options = options;
    this.#latencyMs = options.latencyMs ?? 0;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_APDU_TIMEOUT_MS;
  }

  get fieldOn(): boolean {
    return this.#fieldOn;
  }

  /** Number of command APDUs sent so far. */
  get apduCount(): number {
    return this.#index;
  }

  async poll(frame: Buffer): Promise<boolean> {
    if (this.#latencyMs > 0) await delay(this.#latencyMs);
    this.#fieldOn = this.#card.pollingFrame(frame);
    return this.#fieldOn;
  }

  async transceive(command: Buffer): Promise<Buffer> {
    if (!this.#fieldOn) throw new NfcLinkError('field-lost', 'no field: poll first');
    const info: ApduExchangeInfo = { index: this.#index++, ins: command.length >= 2 ? command[1] : 0 };
    const tear = this.#tearPoint(info);
    const sent = this.#options.interceptCommand ? this.#options.interceptCommand(command, info) : command;
    if (this.#latencyMs > 0) await delay(this.#latencyMs);
    if (tear === 'command') return this.#lose(sent, undefined, 'command never reached the card');

    const started = performance.now();
    let response = this.#card.transmit(sent);
    if (this.#options.interceptResponse) response = this.#options.interceptResponse(response, info);
    if (tear === 'response') return this.#lose(sent, response, 'response never reached the reader');
    if (this.#latencyMs > 0) await delay(this.#latencyMs);
    if (this.#options.record) this.transcript.push({ command: Buffer.from(sent), response: Buffer.from(response) });
    if (this.#timeoutMs > 0 && performance.now() - started + 2 * this.#latencyMs > this.#timeoutMs) {
      this.loseField();
      throw new NfcLinkError('timeout', `no response within ${this.#timeoutMs} ms`);
    }
    return response;
  }

  /** The phone leaves the field (or the reader switches it off). */
  loseField(): void {
    if (this.#fieldOn) this.#card.fieldLost();
    this.#fieldOn = false;
  }

  #tearPoint(info: ApduExchangeInfo): TearPoint | undefined {
    const hooked = this.#options.tear?.(info);
    if (hooked) return hooked;
    const probability = this.#options.fieldLossProbability ?? 0;
    if (probability <= 0) return undefined;
    const draw = (this.#options.random ?? Math.random)();
    if (draw >= probability) return undefined;
    return draw < probability / 2 ? 'command' : 'response';
  }

  async #lose(command: Buffer, response: Buffer | undefined, why: string): Promise<never> {
    if (this.#options.record) {
      this.transcript.push({ command: Buffer.from(command), ...(response ? { response: Buffer.from(response) } : {}) });
    }
    this.loseField();
    // The reader only notices by its timeout.
    if (this.#timeoutMs > 0) await delay(this.#timeoutMs);
    throw new NfcLinkError('field-lost', why);
  }
}
