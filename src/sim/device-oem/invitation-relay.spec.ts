import { describe, expect, it } from 'vitest';
import { InvitationRelay, InvitationRelayError } from './invitation-relay.js';

describe('invitation relay (§7 step 1)', () => {
  it('binds a mailbox to its first reader, refuses others, and expires', () => {
    let now = 1_000_000;
    const relay = new InvitationRelay(() => now);
    const id = relay.deposit(Buffer.from('ciphertext'), now + 60_000);
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(relay.collect(id, 'friend').toString()).toBe('ciphertext');
    expect(relay.collect(id, 'friend').toString()).toBe('ciphertext');
    expect(() => relay.collect(id, 'other')).toThrow(expect.objectContaining({ failure: 'bound-to-another-device' }));
    expect(relay.stored(id)).toMatchObject({ boundDeviceId: 'friend', expiresAtMs: 1_060_000 });
    now += 60_001;
    expect(() => relay.collect(id, 'friend')).toThrow(expect.objectContaining({ failure: 'expired' }));
    expect(() => relay.collect(id, 'friend')).toThrow(InvitationRelayError);
    expect(relay.stored(id)).toBeUndefined();
    expect(() => relay.deposit(Buffer.alloc(1), now - 1)).toThrow(RangeError);
  });
});
