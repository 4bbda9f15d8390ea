import type { KeyState } from './key-state.js';

/** Lifecycle operations that initiators request (PROTOCOL.md §5). */
export type KeyOperation = 'suspend' | 'resume' | 'terminate';

/** What each operation moves a key to, from which states. One place for the whole state machine. */
const TRANSITIONS: Record<KeyOperation, { from: readonly KeyState[]; to: KeyState }> = {
  suspend: { from: ['active'], to: 'suspended' },
  resume: { from: ['suspended'], to: 'active' },
  // `terminating` until the car acknowledges; then `terminated` (see carAcknowledged).
  terminate: { from: ['pending', 'active', 'suspended'], to: 'terminating' },
};

export type TransitionResult = { ok: true; to: KeyState } | { ok: false; current: KeyState };

export function transition(current: KeyState, operation: KeyOperation): TransitionResult {
  const rule = TRANSITIONS[operation];
  return rule.from.includes(current) ? { ok: true, to: rule.to } : { ok: false, current };
}

/** The state the car is told to hold for a server state (the car has no `terminating`). */
export function carStateFor(state: KeyState): 'active' | 'suspended' | 'terminated' {
  switch (state) {
    case 'suspended':
      return 'suspended';
    case 'terminating':
    case 'terminated':
      return 'terminated';
    default:
      return 'active';
  }
}

/** The server state once the car acknowledged a SET_STATE. */
export function stateAfterCarAck(current: KeyState, carState: string): KeyState {
  return current === 'terminating' && carState === 'terminated' ? 'terminated' : current;
}
