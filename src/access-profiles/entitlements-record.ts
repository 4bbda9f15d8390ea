import {
  ENTITLEMENT_BITS,
  ENTITLEMENT_PROFILES,
  encodeEntitlements,
  rightsList,
  rightsMask,
  type EntitlementProfileName,
  type EntitlementRight,
} from '../protocol/entitlements.js';

export const ENTITLEMENT_RIGHTS = Object.keys(ENTITLEMENT_BITS) as EntitlementRight[];
export type { EntitlementRight };

/** JSON form of the entitlements TLV (PROTOCOL.md §6) as the API and the database hold it. */
export interface EntitlementsRecord {
  rights: EntitlementRight[];
  maxSpeedKmh?: number;
  maxPowerPercent?: number;
  maxAudioVolume?: number;
  /** Unix seconds. */
  validity?: { notBefore: number; notAfter: number };
  /** Minutes after local midnight and a weekday mask (bit0 = Monday). */
  timeOfDay?: { startMinute: number; endMinute: number; weekdays: number };
}

/** The TLV bytes cars and certificates carry, from the protocol's one encoder. */
export function entitlementsTlv(record: EntitlementsRecord): Buffer {
  return encodeEntitlements({
    rights: rightsMask(record.rights),
    maxSpeedKmh: record.maxSpeedKmh,
    maxPowerPercent: record.maxPowerPercent,
    maxVolume: record.maxAudioVolume,
    validity: record.validity,
    timeOfDay: record.timeOfDay,
  });
}

const DESCRIPTIONS: Record<EntitlementProfileName, string> = {
  OWNER: 'Everything: unlock, trunk, engine start, drive, share and manage keys.',
  UNLOCK_ONLY: 'Lock and unlock the doors; cannot start the engine.',
  UNLOCK_AND_DRIVE: 'Unlock, start the engine and drive.',
  RESTRICTED_DRIVE: 'Unlock, start and drive with the speed limited to 105 km/h.',
};

/** Defaults of PROTOCOL.md §6, seeded by the first migration. */
export const DEFAULT_ACCESS_PROFILES = (Object.keys(ENTITLEMENT_PROFILES) as EntitlementProfileName[]).map((name) => {
  const profile = ENTITLEMENT_PROFILES[name];
  const entitlements: EntitlementsRecord = { rights: rightsList(profile.rights) };
  if (profile.maxSpeedKmh !== undefined) entitlements.maxSpeedKmh = profile.maxSpeedKmh;
  return { name, description: DESCRIPTIONS[name], entitlements };
});
