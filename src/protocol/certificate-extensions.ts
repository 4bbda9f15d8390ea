/**
 * Private certificate extensions of PROTOCOL.md §2 [stand-in]: they live under the arc
 * 2.25.<project UUID as decimal>, which needs no registration (ITU-T X.667).
 */
export const PROJECT_OID_ARC = '2.25.164986476451394641354628871324004387351';

export const CERTIFICATE_EXTENSION_OIDS = {
  /** OCTET STRING (8 bytes). */
  vehicleIdentifier: `${PROJECT_OID_ARC}.1`,
  /** ENUMERATED owner=1 friend=2, critical. */
  keyRole: `${PROJECT_OID_ARC}.2`,
  /** OCTET STRING holding the entitlements TLV of §6. */
  entitlements: `${PROJECT_OID_ARC}.3`,
} as const;

export const KEY_ROLE_CODES = { owner: 1, friend: 2 } as const;
export type KeyRole = keyof typeof KEY_ROLE_CODES;
