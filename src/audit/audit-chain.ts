import { createHash, randomBytes } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields of an audit row that its hash covers. */
export interface AuditRecordContent {
  id: string;
  occurredAt: Date;
  actor: { type: string; id: string };
  action: string;
  subject: { type: string; id: string };
  details: Record<string, unknown>;
  correlationId: string | null;
}

/** `hash = SHA-256(prev_hash ‖ canonical JSON)`, prev_hash as its 32 raw bytes. */
export function auditHash(prevHash: string, content: AuditRecordContent): string {
  return createHash('sha256')
    .update(Buffer.from(prevHash, 'hex'))
    .update(
      canonicalJson({
        ...content,
        occurredAt: content.occurredAt.toISOString(),
      }),
      'utf8',
    )
    .digest('hex');
}

/**
 * The bytes `auditHash` hashes after `prev_hash`, split around the row's id, for a row whose id
 * the database draws in the same statement that hashes it: `prefix ‖ id ‖ suffix`.
 */
export function auditHashParts(content: Omit<AuditRecordContent, 'id'>): { prefix: Buffer; suffix: Buffer } {
  // A random token stands in for the id: it occurs once, as the id's JSON string.
  const token = randomBytes(16).toString('hex');
  const json = canonicalJson({ ...content, id: token, occurredAt: content.occurredAt.toISOString() });
  const at = json.indexOf(`"id":"${token}"`) + '"id":"'.length;
  return {
    prefix: Buffer.from(json.slice(0, at), 'utf8'),
    suffix: Buffer.from(json.slice(at + token.length), 'utf8'),
  };
}
