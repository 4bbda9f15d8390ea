import { KEY_ROLE_CODES, type KeyRole } from '../protocol/certificate-extensions.js';

/** Key lifecycle states of PROTOCOL.md §5 (server and car). */
export const KEY_STATES = ['pending', 'active', 'suspended', 'terminating', 'terminated'] as const;
export type KeyState = (typeof KEY_STATES)[number];

export const KEY_ROLES = Object.keys(KEY_ROLE_CODES) as KeyRole[];
export type { KeyRole };
