import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import {
  decodeEntitlements,
  encodeEntitlements,
  ENTITLEMENT_PROFILES,
  evaluateEntitlements,
  hasRight,
  rightsList,
  rightsMask,
  withShareWindow,
  type Entitlements,
} from './entitlements.js';
import { ProtocolError } from './errors.js';

describe('entitlement encoding (§6)', () => {
  it('default profiles', () => {
    expect(toHex(encodeEntitlements(ENTITLEMENT_PROFILES.OWNER))).toBe('01013f');
    expect(toHex(encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY))).toBe('010101');
    expect(toHex(encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_AND_DRIVE))).toBe('01010d');
    expect(toHex(encodeEntitlements(ENTITLEMENT_PROFILES.RESTRICTED_DRIVE))).toBe('01010d' + '02020069');
    expect(rightsList(0x0d)).toEqual(['unlock', 'engine-start', 'drive']);
    expect(rightsMask(['unlock', 'trunk', 'engine-start', 'drive', 'share', 'manage-keys'])).toBe(0x3f);
    expect(Object.isFrozen(ENTITLEMENT_PROFILES.OWNER)).toBe(true);
  });

  it('every field, in canonical tag order, round-trips', () => {
    const full: Entitlements = {
      rights: 0x0f,
      maxSpeedKmh: 130,
      maxPowerPercent: 80,
      maxVolume: 20,
      validity: { notBefore: 1_700_000_000, notAfter: 1_800_000_000 },
      timeOfDay: { startMinute: 420, endMinute: 1200, weekdays: 0x1f },
    };
    const encoded = encodeEntitlements(full);
    expect(toHex(encoded)).toBe(
      '01010f' +
        '02020082' +
        '030150' +
        '040114' +
        '0510' +
        '000000006553f100' +
        '000000006b49d200' +
        '0605' +
        '01a404b01f',
    );
    expect(decodeEntitlements(encoded)).toEqual(full);
  });

  it('decodes tags in any order but rejects missing bitmask, unknown, repeated or out-of-range fields', () => {
    expect(decodeEntitlements(fromHex('02020069' + '01010d'))).toEqual(ENTITLEMENT_PROFILES.RESTRICTED_DRIVE);
    const invalid = [
      '02020069', // no 01
      '010140', // bit 6
      '01010107010', // truncated
      '010101' + '070100', // unknown tag
      '010101' + '010101', // repeated
      '010101' + '030165', // 101 %
      '010101' + '0201ff', // wrong length
      '010101' + '0510' + '0000000000000002' + '0000000000000001', // notAfter < notBefore
      '010101' + '0605' + '05a0000000', // start 1440
      '010101' + '0605' + '0000000080', // weekday bit 7
      '010101' + '0510' + 'ff00000000000000' + 'ff00000000000000', // beyond safe integers
    ];
    for (const hex of invalid) expect(() => decodeEntitlements(fromHex(hex)), hex).toThrow(ProtocolError);
  });
});

describe('evaluateEntitlements', () => {
  const monday = 1;
  const noon = 12 * 60;
  const now = 1_750_000_000;

  it('maps transaction codes to rights', () => {
    const unlockOnly = ENTITLEMENT_PROFILES.UNLOCK_ONLY;
    expect(evaluateEntitlements(unlockOnly, 'unlock', now, noon, monday)).toEqual({ allowed: true });
    expect(evaluateEntitlements(unlockOnly, 'lock', now, noon, monday)).toEqual({ allowed: true });
    expect(evaluateEntitlements(unlockOnly, 'trunk', now, noon, monday)).toEqual({
      allowed: false,
      reason: 'right-missing',
    });
    expect(evaluateEntitlements(unlockOnly, 'engine-start', now, noon, monday).allowed).toBe(false);
    expect(evaluateEntitlements(ENTITLEMENT_PROFILES.UNLOCK_AND_DRIVE, 'engine-start', now, noon, monday)).toEqual({
      allowed: true,
    });
    expect(hasRight(ENTITLEMENT_PROFILES.OWNER, 'manage-keys')).toBe(true);
  });

  it('enforces the validity window inclusively', () => {
    const e = { rights: 0x01, validity: { notBefore: 100, notAfter: 200 } };
    expect(evaluateEntitlements(e, 'unlock', 99, noon, monday)).toEqual({ allowed: false, reason: 'not-yet-valid' });
    expect(evaluateEntitlements(e, 'unlock', 100, noon, monday).allowed).toBe(true);
    expect(evaluateEntitlements(e, 'unlock', 200, noon, monday).allowed).toBe(true);
    expect(evaluateEntitlements(e, 'unlock', 201, noon, monday)).toEqual({ allowed: false, reason: 'expired' });
  });

  it('enforces day windows, overnight windows and weekdays', () => {
    const weekdays = 0x1f; // Monday–Friday
    const office = { rights: 0x01, timeOfDay: { startMinute: 480, endMinute: 1080, weekdays } };
    expect(evaluateEntitlements(office, 'unlock', now, 479, monday).allowed).toBe(false);
    expect(evaluateEntitlements(office, 'unlock', now, 480, monday).allowed).toBe(true);
    expect(evaluateEntitlements(office, 'unlock', now, 1079, 5).allowed).toBe(true);
    expect(evaluateEntitlements(office, 'unlock', now, 1080, monday)).toEqual({
      allowed: false,
      reason: 'outside-time-window',
    });
    expect(evaluateEntitlements(office, 'unlock', now, noon, 6).allowed).toBe(false);

    const night = { rights: 0x01, timeOfDay: { startMinute: 1320, endMinute: 360, weekdays: 0x10 } }; // Friday night
    expect(evaluateEntitlements(night, 'unlock', now, 1330, 5).allowed).toBe(true);
    expect(evaluateEntitlements(night, 'unlock', now, 300, 6).allowed).toBe(true); // Saturday early, Friday's window
    expect(evaluateEntitlements(night, 'unlock', now, 300, 5).allowed).toBe(false);
    expect(evaluateEntitlements(night, 'unlock', now, 400, 6).allowed).toBe(false);

    const allDay = { rights: 0x01, timeOfDay: { startMinute: 0, endMinute: 0, weekdays: 0x40 } }; // Sundays
    expect(evaluateEntitlements(allDay, 'unlock', now, 1439, 7).allowed).toBe(true);
    expect(evaluateEntitlements(allDay, 'unlock', now, 0, 1).allowed).toBe(false);
  });

  it('rejects impossible clock inputs', () => {
    expect(() => evaluateEntitlements(ENTITLEMENT_PROFILES.OWNER, 'unlock', now, 1440, monday)).toThrow(ProtocolError);
    const windowed = { rights: 0x01, validity: { notBefore: 100, notAfter: 200 } };
    expect(() => evaluateEntitlements(windowed, 'unlock', Number.NaN, noon, monday)).toThrow(ProtocolError);
  });
});

describe('withShareWindow', () => {
  it('adds the share window, or narrows the profile window to it', () => {
    const from = new Date('2026-12-01T00:00:00Z');
    const to = new Date('2026-12-24T00:00:00Z');
    const plain = withShareWindow(ENTITLEMENT_PROFILES.UNLOCK_ONLY, from, to);
    expect(plain.validity).toEqual({ notBefore: from.getTime() / 1000, notAfter: to.getTime() / 1000 });
    const narrowed = withShareWindow(
      { rights: 0x01, validity: { notBefore: from.getTime() / 1000 + 10, notAfter: to.getTime() / 1000 + 10 } },
      from,
      to,
    );
    expect(narrowed.validity).toEqual({ notBefore: from.getTime() / 1000 + 10, notAfter: to.getTime() / 1000 });
  });
});
