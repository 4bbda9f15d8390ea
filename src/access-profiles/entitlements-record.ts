/** The rights of PROTOCOL.md §6 bitmask tag 01, by bit position. */
export const ENTITLEMENT_RIGHTS = ['unlock', 'trunk', 'engine-start', 'drive', 'share', 'manage-keys'] as const;
export type EntitlementRight = (typeof ENTITLEMENT_RIGHTS)[number];

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

export function rightsToBitmask(rights: readonly EntitlementRight[]): number {
  return rights.reduce((mask, right) => mask | (1 << ENTITLEMENT_RIGHTS.indexOf(right)), 0);
}

export function bitmaskToRights(mask: number): EntitlementRight[] {
  return ENTITLEMENT_RIGHTS.filter((_, bit) => (mask & (1 << bit)) !== 0);
}

/** Defaults of PROTOCOL.md §6, seeded by the first migration and re-created if missing. */
export const DEFAULT_ACCESS_PROFILES: ReadonlyArray<{ name: string; description: string; entitlements: EntitlementsRecord }> = [
  {
    name: 'OWNER',
    description: 'Everything: unlock, trunk, engine start, drive, share and manage keys.',
    entitlements: { rights: bitmaskToRights(0x3f) },
  },
  {
    name: 'UNLOCK_ONLY',
    description: 'Lock and unlock the doors; cannot start the engine.',
    entitlements: { rights: bitmaskToRights(0x01) },
  },
  {
    name: 'UNLOCK_AND_DRIVE',
    description: 'Unlock, start the engine and drive.',
    entitlements: { rights: bitmaskToRights(0x0d) },
  },
  {
    name: 'RESTRICTED_DRIVE',
    description: 'Unlock, start and drive with the speed limited to 105 km/h.',
    entitlements: { rights: bitmaskToRights(0x0d), maxSpeedKmh: 105 },
  },
];
