import { checkInteger, u16, u64 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { decodeTlvs, findTlv, rejectUnknownTags, tagHex, TLV } from './tlv.js';
import type { TransactionCode } from './transaction.js';

/**
 * Entitlements (access profiles), PROTOCOL.md §6 **[stand-in]**: a TLV string carried in
 * certificates, attestations and server records, enforced by the car.
 */
export const ENTITLEMENT_TAG = {
  RIGHTS: 0x01,
  MAX_SPEED: 0x02,
  MAX_POWER: 0x03,
  MAX_VOLUME: 0x04,
  VALIDITY: 0x05,
  TIME_OF_DAY: 0x06,
} as const;

export type EntitlementRight = 'unlock' | 'trunk' | 'engine-start' | 'drive' | 'share' | 'manage-keys';

/** The entitlement bitmask (tag 01), defined once. */
export const ENTITLEMENT_BITS: Readonly<Record<EntitlementRight, number>> = {
  unlock: 0x01,
  trunk: 0x02,
  'engine-start': 0x04,
  drive: 0x08,
  share: 0x10,
  'manage-keys': 0x20,
};
export const ALL_ENTITLEMENT_BITS = 0x3f;

export interface ValidityWindow {
  /** Unix seconds, inclusive. */
  readonly notBefore: number;
  /** Unix seconds, inclusive (as X.509 validity). */
  readonly notAfter: number;
}

/** ISO 8601 weekday: 1 = Monday … 7 = Sunday. Mask bit (weekday − 1) **[stand-in]**. */
export type IsoWeekday = 1 | 2 | 3 | 4 | 5 | 6 | 7;
export const ALL_WEEKDAYS_MASK = 0x7f;
export const MINUTES_PER_DAY = 1440;

export interface TimeOfDayWindow {
  /** Local minute of day the window opens, 0–1439. */
  readonly startMinute: number;
  /** Local minute of day it closes (exclusive), 0–1440; below `startMinute` = overnight; equal = all day. */
  readonly endMinute: number;
  /** Bit 0 Monday … bit 6 Sunday; for overnight windows the day the window opened counts. */
  readonly weekdays: number;
}

export interface Entitlements {
  /** Bitmask of `ENTITLEMENT_BITS`. */
  readonly rights: number;
  readonly maxSpeedKmh?: number;
  /** 0–100. */
  readonly maxPowerPercent?: number;
  readonly maxVolume?: number;
  readonly validity?: ValidityWindow;
  readonly timeOfDay?: TimeOfDayWindow;
}

export type EntitlementProfileName = 'OWNER' | 'UNLOCK_ONLY' | 'UNLOCK_AND_DRIVE' | 'RESTRICTED_DRIVE';

/** Default profiles (§6); automakers may define more through configuration. */
export const ENTITLEMENT_PROFILES: Readonly<Record<EntitlementProfileName, Entitlements>> = Object.freeze({
  OWNER: Object.freeze({ rights: 0x3f }),
  UNLOCK_ONLY: Object.freeze({ rights: 0x01 }),
  UNLOCK_AND_DRIVE: Object.freeze({ rights: 0x0d }),
  RESTRICTED_DRIVE: Object.freeze({ rights: 0x0d, maxSpeedKmh: 105 }),
});

/** The right each AUTH0 transaction code needs (§6: no engine start without bit 2). */
export const REQUIRED_RIGHT: Readonly<Record<TransactionCode, EntitlementRight>> = {
  unlock: 'unlock',
  lock: 'unlock',
  trunk: 'trunk',
  'engine-start': 'engine-start',
};

export function rightsMask(rights: readonly EntitlementRight[]): number {
  return rights.reduce((mask, right) => mask | ENTITLEMENT_BITS[right], 0);
}

export function rightsList(mask: number): EntitlementRight[] {
  return (Object.keys(ENTITLEMENT_BITS) as EntitlementRight[]).filter((right) => mask & ENTITLEMENT_BITS[right]);
}

export function hasRight(entitlements: Entitlements, right: EntitlementRight): boolean {
  return (entitlements.rights & ENTITLEMENT_BITS[right]) !== 0;
}

function checkEntitlements(e: Entitlements): void {
  checkInteger(e.rights, 0, ALL_ENTITLEMENT_BITS, 'rights bitmask');
  if (e.maxSpeedKmh !== undefined) checkInteger(e.maxSpeedKmh, 0, 0xffff, 'max speed');
  if (e.maxPowerPercent !== undefined) checkInteger(e.maxPowerPercent, 0, 100, 'max power %');
  if (e.maxVolume !== undefined) checkInteger(e.maxVolume, 0, 0xff, 'max volume');
  if (e.validity) {
    checkInteger(e.validity.notBefore, 0, Number.MAX_SAFE_INTEGER, 'notBefore');
    checkInteger(e.validity.notAfter, e.validity.notBefore, Number.MAX_SAFE_INTEGER, 'notAfter');
  }
  if (e.timeOfDay) {
    checkInteger(e.timeOfDay.startMinute, 0, MINUTES_PER_DAY - 1, 'window start minute');
    checkInteger(e.timeOfDay.endMinute, 0, MINUTES_PER_DAY, 'window end minute');
    checkInteger(e.timeOfDay.weekdays, 0, ALL_WEEKDAYS_MASK, 'weekday mask');
  }
}

/** Canonical encoding: tags in ascending order, absent fields omitted. */
export function encodeEntitlements(entitlements: Entitlements): Buffer {
  checkEntitlements(entitlements);
  const e = entitlements;
  const parts = [TLV(ENTITLEMENT_TAG.RIGHTS, Buffer.from([e.rights]))];
  if (e.maxSpeedKmh !== undefined) parts.push(TLV(ENTITLEMENT_TAG.MAX_SPEED, u16(e.maxSpeedKmh)));
  if (e.maxPowerPercent !== undefined) parts.push(TLV(ENTITLEMENT_TAG.MAX_POWER, Buffer.from([e.maxPowerPercent])));
  if (e.maxVolume !== undefined) parts.push(TLV(ENTITLEMENT_TAG.MAX_VOLUME, Buffer.from([e.maxVolume])));
  if (e.validity) {
    parts.push(TLV(ENTITLEMENT_TAG.VALIDITY, u64(e.validity.notBefore), u64(e.validity.notAfter)));
  }
  if (e.timeOfDay) {
    const { startMinute, endMinute, weekdays } = e.timeOfDay;
    parts.push(TLV(ENTITLEMENT_TAG.TIME_OF_DAY, u16(startMinute), u16(endMinute), Buffer.from([weekdays])));
  }
  return Buffer.concat(parts);
}

function fixed(value: Buffer, length: number, tag: number): Buffer {
  if (value.length !== length) {
    throw new ProtocolError('length', `entitlement ${tagHex(tag)} must be ${length} bytes, got ${value.length}`);
  }
  return value;
}

function safeSeconds(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('out-of-range', `${what} too large`);
  return Number(value);
}

/** Strict decoding: tag 01 required; unknown or repeated tags and out-of-range values rejected. */
export function decodeEntitlements(bytes: Uint8Array): Entitlements {
  const list = decodeTlvs(bytes, { recursive: false });
  rejectUnknownTags(list, Object.values(ENTITLEMENT_TAG));
  const value = (tag: number, length: number): Buffer | undefined => {
    const item = findTlv(list, tag);
    return item ? fixed(item.value, length, tag) : undefined;
  };
  const rights = value(ENTITLEMENT_TAG.RIGHTS, 1);
  if (!rights) throw new ProtocolError('missing-tag', 'entitlement bitmask (01) is missing');
  const speed = value(ENTITLEMENT_TAG.MAX_SPEED, 2);
  const power = value(ENTITLEMENT_TAG.MAX_POWER, 1);
  const volume = value(ENTITLEMENT_TAG.MAX_VOLUME, 1);
  const validity = value(ENTITLEMENT_TAG.VALIDITY, 16);
  const timeOfDay = value(ENTITLEMENT_TAG.TIME_OF_DAY, 5);
  const decoded: Entitlements = {
    rights: rights[0],
    ...(speed ? { maxSpeedKmh: speed.readUInt16BE(0) } : {}),
    ...(power ? { maxPowerPercent: power[0] } : {}),
    ...(volume ? { maxVolume: volume[0] } : {}),
    ...(validity
      ? {
          validity: {
            notBefore: safeSeconds(validity.readBigUInt64BE(0), 'notBefore'),
            notAfter: safeSeconds(validity.readBigUInt64BE(8), 'notAfter'),
          },
        }
      : {}),
    ...(timeOfDay
      ? {
          timeOfDay: {
            startMinute: timeOfDay.readUInt16BE(0),
            endMinute: timeOfDay.readUInt16BE(2),
            weekdays: timeOfDay[4],
          },
        }
      : {}),
  };
  checkEntitlements(decoded);
  return decoded;
}

export type EntitlementDenialReason = 'right-missing' | 'not-yet-valid' | 'expired' | 'outside-time-window';

export type EntitlementDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: EntitlementDenialReason };

function weekdayBit(weekday: number): number {
  return 1 << (weekday - 1);
}

function previousWeekday(weekday: IsoWeekday): IsoWeekday {
  return (weekday === 1 ? 7 : weekday - 1) as IsoWeekday;
}

function insideTimeWindow(window: TimeOfDayWindow, minute: number, weekday: IsoWeekday): boolean {
  const { startMinute, endMinute, weekdays } = window;
  const today = (weekdays & weekdayBit(weekday)) !== 0;
  if (startMinute === endMinute) return today;
  if (startMinute < endMinute) return today && minute >= startMinute && minute < endMinute;
  // Overnight: the part after midnight belongs to the window that opened the day before.
  if (minute >= startMinute) return today;
  return minute < endMinute && (weekdays & weekdayBit(previousWeekday(weekday))) !== 0;
}

/**
 * The car's decision for one transaction (§6). The caller supplies the clock: unix seconds for
 * the validity window, and the car's local minute of day and ISO weekday for the time window.
 * Drive limits (speed, power, volume) are not decided here; they go to the ECU.
 */
export function evaluateEntitlements(
  entitlements: Entitlements,
  transactionCode: TransactionCode,
  nowUnixSeconds: number,
  localMinuteOfDay: number,
  weekday: IsoWeekday,
): EntitlementDecision {
  // A NaN clock would compare false against both ends of the validity window and allow.
  checkInteger(nowUnixSeconds, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'current unix time');
  checkInteger(localMinuteOfDay, 0, MINUTES_PER_DAY - 1, 'local minute of day');
  checkInteger(weekday, 1, 7, 'weekday');
  if (!hasRight(entitlements, REQUIRED_RIGHT[transactionCode])) return { allowed: false, reason: 'right-missing' };
  const validity = entitlements.validity;
  if (validity && nowUnixSeconds < validity.notBefore) return { allowed: false, reason: 'not-yet-valid' };
  if (validity && nowUnixSeconds > validity.notAfter) return { allowed: false, reason: 'expired' };
  if (entitlements.timeOfDay && !insideTimeWindow(entitlements.timeOfDay, localMinuteOfDay, weekday)) {
    return { allowed: false, reason: 'outside-time-window' };
  }
  return { allowed: true };
}

/**
 * Entitlements of a shared key: the profile's, narrowed to the share's validity window
 * (PROTOCOL.md §7). Server and car both compute it, so they hold the same bytes.
 */
export function withShareWindow(entitlements: Entitlements, notBefore: Date, notAfter: Date): Entitlements {
  const share = { notBefore: Math.floor(notBefore.getTime() / 1000), notAfter: Math.floor(notAfter.getTime() / 1000) };
  const validity = entitlements.validity
    ? {
        notBefore: Math.max(entitlements.validity.notBefore, share.notBefore),
        notAfter: Math.min(entitlements.validity.notAfter, share.notAfter),
      }
    : share;
  return { ...entitlements, validity };
}
