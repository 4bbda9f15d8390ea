import { createHash } from 'node:crypto';
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
