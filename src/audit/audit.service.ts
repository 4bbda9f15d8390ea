import { Injectable } from '@nestjs/common';
import { createHash, randomInt } from 'node:crypto';
import { DataSource, type EntityManager } from 'typeorm';
import { ProblemException, type ProblemType } from '../common/errors/problem.js';
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
  /** First row whose hash or link does not match, when a chain is broken. */
  firstBroken?: { id: string; reason: 'hash-mismatch' | 'broken-link' };
  /** How many chains hold rows. */
  chains: number;
  /** SHA-256 over the chains' last hashes in chain order: one value to compare with a saved one. */
  lastHash: string;
}

/**
 * A caller reached for something that is not theirs (another partner's key, another vehicle's
 * command, a key it cannot prove it holds). The answer is the problem; the attempt is audited
 * as `access.denied` in its own transaction, since the request's own transaction rolls back.
 */
export class AccessDenied extends ProblemException {
  constructor(
    problemType: Extract<ProblemType, 'forbidden' | 'not-found'>,
    detail: string,
    readonly attempt: { actor: AuditActor; subject: { type: string; id: string }; operation: string; reason: string },
    readonly correlationId?: string,
  ) {
    super(problemType, detail);
  }
}

/** Arbitrary constant naming the advisory locks that serialise appends to each chain. */
const AUDIT_CHAIN_LOCK = 0x61756474; // "audt"
/**
 * Parallel chains. A transaction holds its chain's lock until it commits, so one chain would
 * admit one audited transaction per commit time; with 16, concurrent transactions rarely meet.
 */
export const AUDIT_CHAINS = 16;
const VERIFY_BATCH = 1_000;

@Injectable()
export class AuditService {
  /** The chain each open transaction appends to: every row of one transaction goes to one chain. */
  private readonly chainOf = new WeakMap<object, number>();

  constructor(private readonly dataSource: DataSource) {}

  /**
   * Appends one row inside the caller's transaction, so the audit row commits (or not) with the
   * state change it describes. The transaction's chain is locked until it commits, which keeps
   * that chain linear; a transaction only ever locks one chain, so chains cannot deadlock.
   */
  async append(manager: EntityManager, entry: AuditEntry): Promise<AuditEvent> {
    const runner = manager.queryRunner;
    if (!runner?.isTransactionActive) return this.dataSource.transaction((inner) => this.append(inner, entry));
    let chain = this.chainOf.get(runner);
    if (chain === undefined) {
      chain = randomInt(AUDIT_CHAINS);
      this.chainOf.set(runner, chain);
    }
    // Re-entrant within the transaction: a second row of the same transaction does not wait.
    await manager.query('SELECT pg_advisory_xact_lock($1, $2)', [AUDIT_CHAIN_LOCK, chain]);
    // After the lock, in its own statement, so its snapshot sees the chain's last committed row.
    const [{ id, last }] = await manager.query<Array<{ id: string; last: string | null }>>(
      `SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))::text AS id,
              (SELECT hash FROM audit_events WHERE chain = $1 ORDER BY id DESC LIMIT 1) AS last`,
      [chain],
    );
    const prevHash = last ?? GENESIS_HASH;
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
         (id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, correlation_id, prev_hash, hash, chain)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
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
        chain,
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
      chain,
    });
    return event;
  }

  /** Runs `work`; if it is refused with AccessDenied, records the attempt before passing the refusal on. */
  async auditingDenials<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof AccessDenied) {
        const { actor, subject, operation, reason } = error.attempt;
        await this.dataSource.transaction((manager) =>
          this.append(manager, {
            actor,
            action: 'access.denied',
            subject,
            details: { operation, reason, answered: error.getStatus() },
            correlationId: error.correlationId,
          }),
        );
      }
      throw error;
    }
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

  /** Recomputes every chain in id order and reports the first row that does not match. */
  async verify(): Promise<AuditVerification> {
    const chains = await this.dataSource.query<Array<{ chain: number }>>(
      'SELECT DISTINCT chain FROM audit_events ORDER BY chain',
    );
    let checked = 0;
    const heads = createHash('sha256');
    for (const { chain } of chains) {
      const result = await this.verifyChain(chain);
      checked += result.checked;
      if (result.firstBroken) {
        return {
          ok: false,
          checked,
          firstBroken: result.firstBroken,
          chains: chains.length,
          lastHash: result.lastHash,
        };
      }
      heads.update(result.lastHash);
    }
    return { ok: true, checked, chains: chains.length, lastHash: heads.digest('hex') };
  }

  private async verifyChain(
    chain: number,
  ): Promise<{ checked: number; lastHash: string; firstBroken?: AuditVerification['firstBroken'] }> {
    const repository = this.dataSource.getRepository(AuditEvent);
    let prevHash = GENESIS_HASH;
    let checked = 0;
    let after = '0';
    for (;;) {
      const rows = await repository
        .createQueryBuilder('e')
        .where('e.chain = :chain AND e.id > :after', { chain, after })
        .orderBy('e.id', 'ASC')
        .limit(VERIFY_BATCH)
        .getMany();
      for (const row of rows) {
        if (row.prevHash !== prevHash) {
          return { checked, firstBroken: { id: row.id, reason: 'broken-link' }, lastHash: prevHash };
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
          return { checked, firstBroken: { id: row.id, reason: 'hash-mismatch' }, lastHash: prevHash };
        }
        prevHash = row.hash;
        checked += 1;
      }
      if (rows.length < VERIFY_BATCH) return { checked, lastHash: prevHash };
      after = rows[rows.length - 1].id;
    }
  }
}
