import { fromHex } from '../../protocol/bytes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { MAX_FAILED_PAIRING_ATTEMPTS, PAIRING_SALT_LENGTH } from '../../protocol/pairing.js';
import { decodeScalar, parseShare } from '../../protocol/spake2plus-group.js';
import type { ScryptCost, VerifierRecord } from '../../protocol/spake2plus-password.js';
import type { PairingVerifier } from '../../protocol/telematics-messages.js';

/** The SPAKE2+ verifier the car holds for one pairing session (§3.1 step 4): never w1. */
export interface InstalledVerifier {
  readonly pairingSessionId: string;
  readonly record: VerifierRecord;
  readonly salt: Buffer;
  readonly cost: ScryptCost;
}

export interface PairingModeSummary {
  readonly pairingSessionId?: string;
  readonly failedAttempts: number;
  readonly lockedOut: boolean;
}

/** The pairing mode as a snapshot holds it: the verifier in its PAIRING_VERIFIER form, the failure count. */
export interface PairingModeSnapshot {
  verifier?: PairingVerifier;
  failedAttempts: number;
}

function checkCost({ N, r, p }: ScryptCost): void {
  const integers = [N, r, p].every((value) => Number.isSafeInteger(value) && value >= 1);
  if (!integers || N < 2 || (N & (N - 1)) !== 0 || N > 0xffff_ffff || r > 0xffff || p > 0xffff) {
    throw new ProtocolError('malformed', 'scrypt cost must be N a power of two, r and p positive');
  }
}

/**
 * The car's pairing mode (§3.1): the verifier of the current session and the failed-attempt
 * counter. A new verifier replaces the old one and resets the counter; after
 * `MAX_FAILED_PAIRING_ATTEMPTS` failures the car refuses until a new verifier arrives; a
 * successful pairing consumes the verifier.
 */
export class VehiclePairingMode {
  readonly #maxFailedAttempts: number;
  #verifier: InstalledVerifier | undefined;
  #failedAttempts = 0;

  constructor(maxFailedAttempts = MAX_FAILED_PAIRING_ATTEMPTS) {
    this.#maxFailedAttempts = maxFailedAttempts;
  }

  /** Validates and installs a verifier from PAIRING_VERIFIER (§8); malformed → ProtocolError. */
  install(verifier: PairingVerifier): InstalledVerifier {
    if (typeof verifier.pairingSessionId !== 'string' || verifier.pairingSessionId.length === 0) {
      throw new ProtocolError('missing-tag', 'the verifier names no pairing session');
    }
    const w0 = fromHex(verifier.w0);
    decodeScalar(w0, 'w0');
    const L = parseShare(fromHex(verifier.L));
    const salt = fromHex(verifier.salt);
    if (salt.length !== PAIRING_SALT_LENGTH) throw new ProtocolError('length', 'the pairing salt must be 16 bytes');
    const cost = { N: verifier.scryptN, r: verifier.scryptR, p: verifier.scryptP };
    checkCost(cost);
    this.#discard();
    this.#verifier = { pairingSessionId: verifier.pairingSessionId, record: { w0, L }, salt, cost };
    this.#failedAttempts = 0;
    return this.#verifier;
  }

  get verifier(): InstalledVerifier | undefined {
    return this.#verifier;
  }

  get failedAttempts(): number {
    return this.#failedAttempts;
  }

  get lockedOut(): boolean {
    return this.#verifier !== undefined && this.#failedAttempts >= this.#maxFailedAttempts;
  }

  get summary(): PairingModeSummary {
    return {
      ...(this.#verifier ? { pairingSessionId: this.#verifier.pairingSessionId } : {}),
      failedAttempts: this.#failedAttempts,
      lockedOut: this.lockedOut,
    };
  }

  toSnapshot(): PairingModeSnapshot {
    const installed = this.#verifier;
    return {
      ...(installed
        ? {
            verifier: {
              pairingSessionId: installed.pairingSessionId,
              w0: installed.record.w0.toString('hex'),
              L: installed.record.L.toString('hex'),
              salt: installed.salt.toString('hex'),
              scryptN: installed.cost.N,
              scryptR: installed.cost.r,
              scryptP: installed.cost.p,
            },
          }
        : {}),
      failedAttempts: this.#failedAttempts,
    };
  }

  /** Reinstalls a snapshot's verifier (validated as a new one would be) and its failure count. */
  restoreSnapshot(snapshot: PairingModeSnapshot): void {
    if (snapshot.verifier) this.install(snapshot.verifier);
    else this.#discard();
    if (!Number.isSafeInteger(snapshot.failedAttempts) || snapshot.failedAttempts < 0) {
      throw new RangeError('the pairing mode snapshot holds an invalid failure count');
    }
    this.#failedAttempts = snapshot.failedAttempts;
  }

  /**
   * Counted before the car sends its evidence, as a smart card decrements its PIN counter
   * before checking: a torn SPAKE2+ VERIFY cannot buy a free guess.
   */
  beginAttempt(): void {
    this.#failedAttempts++;
  }

  /** The device's evidence M2 matched: the attempt was not a failure after all. */
  attemptSucceeded(): void {
    this.#failedAttempts = Math.max(0, this.#failedAttempts - 1);
  }

  /** A successful pairing uses the verifier up: a further owner needs a new session (§3.1). */
  complete(): void {
    this.#discard();
    this.#failedAttempts = 0;
  }

  #discard(): void {
    this.#verifier?.record.w0.fill(0);
    this.#verifier = undefined;
  }
}
