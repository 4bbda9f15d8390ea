import type { TransactionCode } from '../../protocol/transaction.js';
import type { DriveLimits } from './vehicle-events.js';

export interface EcuState {
  readonly locked: boolean;
  readonly trunkOpen: boolean;
  readonly engineRunning: boolean;
  /** Limits reported with the last engine start (§6), absent when unrestricted. */
  readonly driveLimits?: DriveLimits;
}

/** A state as one object literal (every unlock makes one; an object spread with more fields costs more). */
function ecuState(locked: boolean, trunkOpen: boolean, engineRunning: boolean, driveLimits?: DriveLimits): EcuState {
  return driveLimits ? { locked, trunkOpen, engineRunning, driveLimits } : { locked, trunkOpen, engineRunning };
}

/** The body and powertrain controllers a granted transaction drives. */
export class VehicleEcu {
  #state: EcuState = { locked: true, trunkOpen: false, engineRunning: false };
  #actuations = 0;

  get state(): EcuState {
    return this.#state;
  }

  /** How many actions the readers have granted. */
  get actuations(): number {
    return this.#actuations;
  }

  actuate(action: TransactionCode, driveLimits?: DriveLimits): void {
    this.#actuations++;
    const { locked, trunkOpen, engineRunning } = this.#state;
    switch (action) {
      case 'unlock':
        this.#state = ecuState(false, trunkOpen, engineRunning, this.#state.driveLimits);
        return;
      case 'lock':
        this.#state = ecuState(true, false, engineRunning, this.#state.driveLimits);
        return;
      case 'trunk':
        this.#state = ecuState(locked, true, engineRunning, this.#state.driveLimits);
        return;
      case 'engine-start':
        this.#state = ecuState(locked, trunkOpen, true, driveLimits);
        return;
    }
  }

  toSnapshot(): { state: EcuState; actuations: number } {
    return { state: this.#state, actuations: this.#actuations };
  }

  restoreSnapshot(snapshot: { state: EcuState; actuations: number }): void {
    this.#state = { ...snapshot.state };
    this.#actuations = snapshot.actuations;
  }

  /** The driver switches the engine off. */
  stopEngine(): void {
    this.#state = ecuState(this.#state.locked, this.#state.trunkOpen, false, undefined);
  }
}
