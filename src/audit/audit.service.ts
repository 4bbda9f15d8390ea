import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditEvent } from './audit-event.entity.js';
import { GENESIS_HASH, auditHash } from './audit-chain.js';

export interface AuditActor {
  type: 'operator' | 'partner' | 'vehicle' | 'system';
  id: string;
}

export interface AuditEntry {
  actor: AuditActor;
  action: string;
  subject: { type: string; id: string };
  details?: Record<string, unknown>;
  correlationId?: string | null;
}

export interface AuditVerification {
  ok: boolean;
  checked: number;
  /** First row whose hash or link does not match, when the chain is broken. */
  firstBroken?: { id: string; reason: 'hash-mismatch' | 'broken-link' };
  lastHash: string;
}

/** Arbitrary constant naming the advisory lock that serialises appends to the chain. */
const AUDIT_CHAIN_LOCK = 0x61756474; // "audt"
const VERIFY_BATCH = 1_000;

@Injectable()
export class AuditService {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Appends one row inside the caller's transaction, so the audit row commits (or not) with the
   * state change it describes. The transaction-scoped advisory lock keeps the chain linear.
   */
  async append(manager: EntityManager, entry: AuditEntry): Promise<AuditEvent> {
    await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_CHAIN_LOCK]);
    const [last] = await manager.query<
      Array<{
        hash: string;
      }>
    >('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1');
    const [{ id }] = await manager.query<Array<{ id: string }>>(
      `SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))::text AS id`,
    );
    const prevHash = last?.hash ?? GENESIS_HASH;
    const occurredAt = new Date();
    const content = {
      id,
      occurredAt,
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      details: entry.details ?? {},
      correlationId: entry.correlationId ?? null,
    };
    const hash = auditHash(prevHash, content);
    // Raw insert: the id is part of the hashed content, so it must be the one we drew.
    await manager.query(
      `INSERT INTO audit_events
         (id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, correlation_id, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        id,
        occurredAt,
        entry.actor.type,
        entry.actor.id,
        entry.action,
        entry.subject.type,
        entry.subject.id,
        JSON.stringify(content.details),
        content.correlationId,
        prevHash,
        hash,
      ],
    );
    const event = manager.create(AuditEvent, {
      id,
      occurredAt,
      actorType: entry.actor.type,
      actorId: entry.actor.id,
      action: entry.action,
      subjectType: entry.subject.type,
      subjectId: entry.subject.id,
      details: content.details,
      correlationId: content.correlationId,
      prevHash,
      hash,
    });
    return event;
  }

  async list(options: {
    after?: string;
    limit: number;
    subjectType?: string;
    subjectId?: string;
  }): Promise<AuditEvent[]> {
    const query = this.dataSource
      .getRepository(AuditEvent)
      .createQueryBuilder('e')
      .orderBy('e.id', 'ASC')
      .limit(options.limit);
    if (options.after) query.andWhere('e.id > :after', { after: options.after });
    if (options.subjectType) query.andWhere('e.subject_type = :subjectType', { subjectType: options.subjectType });
    if (options.subjectId) query.andWhere('e.subject_id = :subjectId', { subjectId: options.subjectId });
    return query.getMany();
  }

  /** Recomputes the whole chain in id order and reports the first row that does not match. */
  async verify(): Promise<AuditVerification> {
    const repository = this.dataSource.getRepository(AuditEvent);
    let prevHash = GENESIS_HASH;
    let checked = 0;
    let after = '0';
    for (;;) {
      const rows = await repository
        .createQueryBuilder('e')
        .where('e.id > :after', { after })
        .orderBy('e.id', 'ASC')
        .limit(VERIFY_BATCH)
        .getMany();
      for (const row of rows) {
        if (row.prevHash !== prevHash) {
          return { ok: false, checked, firstBroken: { id: row.id, reason: 'broken-link' }, lastHash: prevHash };
        }
        const expected = auditHash(prevHash, {
          id: row.id,
          occurredAt: row.occurredAt,
          actor: { type: row.actorType, id: row.actorId },
          action: row.action,
          subject: { type: row.subjectType, id: row.subjectId },
          details: row.details,
          correlationId: row.correlationId,
        });
        if (expected !== row.hash) {
          return { ok: false, checked, firstBroken: { id: row.id, reason: 'hash-mismatch' }, lastHash: prevHash };
        }
        prevHash = row.hash;
        checked += 1;
      }
      if (rows.length < VERIFY_BATCH) return { ok: true, checked, lastHash: prevHash };
      after = rows[rows.length - 1].id;
    }
  }
}
