import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  ACK_JWS_TYPE,
  COMMAND_JWS_TYPE,
  isTelematicsCommand,
  type TelematicsAck,
  type TelematicsCommand,
} from '../../protocol/telematics-messages.js';
import { signCompactJws, verifyCompactJws } from '../../protocol/crypto/compact-jws.js';

/** What the car does with a verified, in-order command; returns nothing, throws to refuse. */
export type CommandHandler = (command: TelematicsCommand) => void;

export class TelematicsRejection extends Error {
  override readonly name = 'TelematicsRejection';
}

export interface TelematicsUnitOptions {
  /** 8-byte vehicle identifier, hex. */
  vehicleIdentifier: string;
  /** The car's long-term private key: signs acks. Stays inside this object. */
  vehiclePrivateKey: KeyObject;
  /** The server's telematics public key, pinned at provisioning. */
  telematicsPublicKey: KeyObject | string;
  apply: CommandHandler;
  /** The §8 key-list digest the acks carry (`keyListDigest` of the protocol core). */
  keyListDigest: () => string;
  /** The car's own key-list version when it can move without a command (owner relay, §5). */
  keyListVersion?: () => number;
  /** How many applied commands `applied` keeps for inspection, newest last (default 1 000). */
  appliedHistory?: number;
}

const DEFAULT_APPLIED_HISTORY = 1_000;

/**
 * The car's telematics control unit: verifies commands against the pinned server key, applies
 * each `seq` once and in order, and signs acks. A duplicate (seq ≤ last applied) is
 * acknowledged again without being applied again.
 */
export class TelematicsUnit {
  private readonly serverKey: KeyObject;
  private lastAppliedSeq = 0;
  private keyListVersion = 0;
  readonly applied: TelematicsCommand[] = [];

  // True-private: the options hold the vehicle private key.
  readonly #options: TelematicsUnitOptions;

  constructor(options: TelematicsUnitOptions) {
    this.#options = options;
    this.serverKey =
      typeof options.telematicsPublicKey === 'string'
        ? createPublicKey(options.telematicsPublicKey)
        : options.telematicsPublicKey;
  }

  get lastSeq(): number {
    return this.lastAppliedSeq;
  }

  /** Verifies and applies one command; resolves to the signed ack (compact JWS), rejects with TelematicsRejection. */
  receive(jws: string): Promise<string> {
    return new Promise((resolve) => resolve(this.apply(jws)));
  }

  private apply(jws: string): string {
    let command: unknown;
    try {
      const verified = verifyCompactJws(jws, this.serverKey);
      if (verified.header.typ !== COMMAND_JWS_TYPE) throw new Error('typ');
      command = JSON.parse(verified.payload.toString('utf8'));
    } catch {
      throw new TelematicsRejection('the command is not signed by the pinned telematics key');
    }
    if (!isTelematicsCommand(command)) throw new TelematicsRejection('the command payload is malformed');
    if (command.vehicleId !== this.#options.vehicleIdentifier) {
      throw new TelematicsRejection('the command is for another vehicle');
    }
    if (command.seq > this.lastAppliedSeq) {
      this.#options.apply(command);
      this.lastAppliedSeq = command.seq;
      this.keyListVersion = Math.max(this.keyListVersion, command.keyListVersion);
      this.applied.push(command);
      if (this.applied.length > (this.#options.appliedHistory ?? DEFAULT_APPLIED_HISTORY)) this.applied.shift();
    }
    return this.ack(command.seq);
  }

  /** Where the unit stands in the server's command stream; the pinned key is the car's to keep. */
  toSnapshot(): { lastSeq: number; keyListVersion: number } {
    return { lastSeq: this.lastAppliedSeq, keyListVersion: this.keyListVersion };
  }

  restoreSnapshot(snapshot: { lastSeq: number; keyListVersion: number }): void {
    if (![snapshot.lastSeq, snapshot.keyListVersion].every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new RangeError('the telematics snapshot holds an invalid sequence number');
    }
    this.lastAppliedSeq = snapshot.lastSeq;
    this.keyListVersion = snapshot.keyListVersion;
  }

  /** The pinned server key (SPKI PEM). */
  get telematicsPublicKeyPem(): string {
    return this.serverKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  keyListDigest(): string {
    return this.#options.keyListDigest();
  }

  private ack(seq: number): string {
    const ack: TelematicsAck = {
      vehicleId: this.#options.vehicleIdentifier,
      seq,
      keyListVersion: Math.max(this.keyListVersion, this.#options.keyListVersion?.() ?? 0),
      keyListDigest: this.keyListDigest(),
    };
    return signCompactJws(JSON.stringify(ack), this.#options.vehiclePrivateKey, { typ: ACK_JWS_TYPE });
  }
}
