import { createHash } from 'node:crypto';

/**
 * Server ⇄ car telematics messages (PROTOCOL.md §8): compact JWS, ES256. Commands are signed by
 * the server's telematics key, which the car pins; acks by the vehicle key.
 */
export const TELEMATICS_COMMANDS = ['ADD_KEY', 'SET_STATE', 'SET_ENTITLEMENTS', 'PAIRING_VERIFIER', 'SYNC'] as const;
export type TelematicsCommandName = (typeof TELEMATICS_COMMANDS)[number];

export const COMMAND_JWS_TYPE = 'dk-command+jws';
export const ACK_JWS_TYPE = 'dk-ack+jws';

/** JWS payload of a command to a car. */
export interface TelematicsCommand {
  v: 1;
  /** 8-byte vehicle identifier, hex. */
  vehicleId: string;
  seq: number;
  cmd: TelematicsCommandName;
  keyId?: string;
  state?: string;
  /** Entitlements TLV (§6), hex. */
  entitlements?: string;
  /** ADD_KEY: the endpoint public key, 65-byte uncompressed point, hex (the car checks keyId against it). */
  endpointPublicKey?: string;
  /** ADD_KEY: `owner` or `friend` (§2 key role); the car assumes `friend` when absent. */
  role?: string;
  /** PAIRING_VERIFIER: the session the verifier belongs to. */
  pairingSessionId?: string;
  /** PAIRING_VERIFIER: the SPAKE2+ verifier of §3.1 step 4 (the car never gets w1). */
  verifier?: PairingVerifier;
  /** SYNC: the server's whole key list for the car, which aligns the keys it names (§8). */
  keys?: SyncKeyEntry[];
  keyListVersion: number;
  iat: number;
}

/**
 * One key of a full SYNC: its state as the car must hold it (`terminated` for a server
 * `terminating`); live keys also carry what an ADD_KEY would, so a car that lost one re-adds it.
 */
export interface SyncKeyEntry {
  keyId: string;
  state: 'active' | 'suspended' | 'terminated';
  role?: string;
  endpointPublicKey?: string;
  entitlements?: string;
}

/** The SPAKE2+ verifier as the car receives it (PROTOCOL.md §3.1), byte strings in hex. */
export interface PairingVerifier {
  pairingSessionId: string;
  w0: string;
  L: string;
  salt: string;
  scryptN: number;
  scryptR: number;
  scryptP: number;
}

/** JWS payload of a car's acknowledgement. */
export interface TelematicsAck {
  vehicleId: string;
  seq: number;
  keyListVersion: number;
  /** SHA-256 over the sorted `keyId‖state` lines of the car's live keys, hex ({@link keyListDigest}). */
  keyListDigest: string;
}

/** Request body the car's telematics endpoint receives; it answers `{ ack }` (200) or 202. */
export interface TelematicsCommandEnvelope {
  command: string;
}

export function isTelematicsCommand(value: unknown): value is TelematicsCommand {
  const c = value as TelematicsCommand;
  return (
    typeof c === 'object' &&
    c !== null &&
    c.v === 1 &&
    typeof c.vehicleId === 'string' &&
    /^[0-9a-f]{16}$/.test(c.vehicleId) &&
    Number.isSafeInteger(c.seq) &&
    c.seq > 0 &&
    (TELEMATICS_COMMANDS as readonly string[]).includes(c.cmd) &&
    Number.isSafeInteger(c.keyListVersion) &&
    c.keyListVersion >= 0 &&
    Number.isSafeInteger(c.iat)
  );
}

export function isTelematicsAck(value: unknown): value is TelematicsAck {
  const ack = value as TelematicsAck;
  return (
    typeof ack === 'object' &&
    ack !== null &&
    typeof ack.vehicleId === 'string' &&
    Number.isSafeInteger(ack.seq) &&
    ack.seq > 0 &&
    Number.isSafeInteger(ack.keyListVersion) &&
    typeof ack.keyListDigest === 'string' &&
    /^[0-9a-f]{64}$/.test(ack.keyListDigest)
  );
}

/** Key states a key-list digest covers: the keys a car honours now or after a resume. */
export const DIGESTED_KEY_STATES: readonly string[] = ['active', 'suspended'];

/** Line of the §8 `keyListDigest`: hex key id immediately followed by the state. */
export function keyListLine(keyId: string, state: string): string {
  return `${keyId}${state}`;
}

/**
 * The §8 `keyListDigest`: SHA-256 over the sorted `keyId‖state` lines of the active and
 * suspended keys, joined by `\n`. Pending and terminated keys are left out: a car learns of a
 * pending key at its own pace, and terminations only accumulate (the deny-list never shrinks).
 */
export function keyListDigest(keys: Iterable<{ readonly keyId: string; readonly state: string }>): string {
  const lines: string[] = [];
  for (const key of keys) if (DIGESTED_KEY_STATES.includes(key.state)) lines.push(keyListLine(key.keyId, key.state));
  return createHash('sha256').update(lines.sort().join('\n')).digest('hex');
}

export const NOTIFICATION_JWS_TYPE = 'dk-notification+jws';

/** JWS payload (ES256, KTS key) of a notification to a Device OEM backend. */
export interface PartnerNotificationMessage {
  /** Unique per event: the partner deduplicates on it. */
  eventId: string;
  type: string;
  keyId: string;
  vehicleId: string;
  /** Orders the notifications of one key; only moves forward. */
  keyVersion: number;
  state: string;
  occurredAt: string;
  /**
   * REVOCATION_RELAY (§4.7): what the owner device writes at the head of its private mailbox —
   * the vehicle's key-list version and up to 6 key ids the car must revoke at the next tap.
   */
  revocationRelay?: { keyListVersion: number; keyIds: string[] };
}
