import { describe, expect, it } from 'vitest';
import { deliveryBackoffMs } from './delivery-policy.js';

describe('deliveryBackoffMs', () => {
  const settings = { backoffBaseMs: 1_000, backoffMaxMs: 60_000 };

  it('doubles per attempt, stays within [ceiling/2, ceiling] and never exceeds the cap', () => {
    const low = (_min: number, _max: number) => 0;
    const high = (_min: number, max: number) => max - 1;
    expect(deliveryBackoffMs(1, settings, low)).toBe(500);
    expect(deliveryBackoffMs(1, settings, high)).toBe(1_000);
    expect(deliveryBackoffMs(3, settings, low)).toBe(2_000);
    expect(deliveryBackoffMs(3, settings, high)).toBe(4_000);
    expect(deliveryBackoffMs(50, settings, high)).toBe(60_000);
    expect(deliveryBackoffMs(50, settings, low)).toBe(30_000);
  });

  it('spreads retries of the same attempt', () => {
    const delays = new Set(Array.from({ length: 50 }, () => deliveryBackoffMs(4, settings)));
    expect(delays.size).toBeGreaterThan(10);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(4_000);
      expect(delay).toBeLessThanOrEqual(8_000);
    }
  });
});
