import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEY_STATES } from './key-state.js';
import { carStateFor, stateAfterCarAck, transition, type KeyOperation } from './key-state-machine.js';

describe('key state machine (PROTOCOL.md §5)', () => {
  it('follows pending → active → suspended ⇄ active → terminating → terminated', () => {
    expect(transition('active', 'suspend')).toEqual({ ok: true, to: 'suspended' });
    expect(transition('suspended', 'resume')).toEqual({ ok: true, to: 'active' });
    expect(transition('active', 'terminate')).toEqual({ ok: true, to: 'terminating' });
    expect(transition('pending', 'terminate')).toEqual({ ok: true, to: 'terminating' });
    expect(transition('suspended', 'terminate')).toEqual({ ok: true, to: 'terminating' });
    expect(stateAfterCarAck('terminating', 'terminated')).toBe('terminated');
  });

  it('refuses illegal transitions with the current state', () => {
    expect(transition('pending', 'suspend')).toEqual({ ok: false, current: 'pending' });
    expect(transition('active', 'resume')).toEqual({ ok: false, current: 'active' });
    expect(transition('terminated', 'resume')).toEqual({ ok: false, current: 'terminated' });
    expect(transition('terminating', 'terminate')).toEqual({ ok: false, current: 'terminating' });
  });

  it('never leaves a terminal state and never revives a terminating key', () => {
    const operations: KeyOperation[] = ['suspend', 'resume', 'terminate'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...operations), { maxLength: 20 }), (sequence) => {
        let state: (typeof KEY_STATES)[number] = 'active';
        let terminated = false;
        for (const operation of sequence) {
          const result = transition(state, operation);
          if (result.ok) state = result.to;
          if (state === 'terminating') terminated = true;
          if (terminated) expect(['terminating', 'terminated']).toContain(state);
        }
      }),
    );
  });

  it('tells the car only states it knows', () => {
    expect(KEY_STATES.map(carStateFor)).toEqual(['active', 'active', 'suspended', 'terminated', 'terminated']);
  });
});
