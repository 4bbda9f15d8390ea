import type { TransactionCode } from '../../protocol/transaction.js';
import type { DriveLimits } from './vehicle-events.js';

export interface EcuState {
  readonly locked: boolean;
  readonly trunkOpen: boolean;
  readonly engineRunning: boolean;
  /** Limits reported with the last engine start (§6), absent when unrestricted. */
  readonly driveLimits?: DriveLimits;
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
    switch (action) {
      case 'unlock':
        this.#state = { ...this.#state, locked: false };
        return;
      case 'lock':
        this.#state = { ...this.#state, locked: true, trunkOpen: false };
        return;
      case 'trunk':
        this.#state = { ...this.#state, trunkOpen: true };
        return;
      case 'engine-start': {
        const { driveLimits: _previous, ...rest } = this.#state;
        this.#state = { ...rest, engineRunning: true, ...(driveLimits ? { driveLimits } : {}) };
        return;
      }
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
    const { driveLimits: _limits, ...rest } = this.#state;
    this.#state = { ...rest, engineRunning: false };
  }
}
