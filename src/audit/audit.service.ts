import { Injectable } from '@nestjs/common';
import { createHash, randomInt } from 'node:crypto';
import {
  DataSource,
  type EntityManager,
  type EntitySubscriberInterface,
  type QueryRunner,
  type TransactionCommitEvent,
  type TransactionRollbackEvent,
} from 'typeorm';
import { ProblemException, type ProblemType } from '../common/errors/problem.js';
import { prepared, runPrepared } from '../database/prepared.js';
import { AuditEvent } from './audit-event.entity.js';
import { GENESIS_HASH, auditHash, auditHashParts, type AuditRecordContent } from './audit-chain.js';

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
  firstBroken?: { id: string; reason: 'hash-mismatch' | 'broken-link' | 'head-mismatch' };
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

/**
 * Parallel chains (rows of `audit_chain_heads`). A transaction locks one chain head from just
 * before its commit until the commit, taking any head no other transaction holds.
 */
export const AUDIT_CHAINS = 16;
const VERIFY_BATCH = 1_000;

const DRAW_IDS = prepared(
  `SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))::text FROM generate_series(1, $1)) AS drawn`,
);
/** A chain head no other transaction holds, locked as last committed, with `$1` row ids drawn. */
const TAKE_FREE_HEAD = prepared(
  `SELECT chain, last_hash AS "lastHash",
          ARRAY(SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))::text FROM generate_series(1, $1)) AS drawn
     FROM audit_chain_heads ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED`,
);
/** Every head is held right now: wait for one (a transaction holds at most one, so no cycle). */
const WAIT_FOR_HEAD = prepared(
  `SELECT chain, last_hash AS "lastHash",
          ARRAY(SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))::text FROM generate_series(1, $2)) AS drawn
     FROM audit_chain_heads WHERE chain = (SELECT chain FROM audit_chain_heads ORDER BY chain OFFSET $1 LIMIT 1)
      FOR UPDATE`,
);
/** Raw insert: each id is part of its hashed content, so it must be the one drawn. */
const APPEND_ROWS = prepared(
  `WITH appended AS (
     INSERT INTO audit_events
       (id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, correlation_id, prev_hash, hash, chain)
     SELECT id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details::jsonb, correlation_id,
            prev_hash, hash, $12
       FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                   $8::text[], $9::text[], $10::text[], $11::text[])
         AS r(id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, correlation_id, prev_hash, hash)
     RETURNING 1)
   UPDATE audit_chain_heads SET last_id = $13, last_hash = $14 WHERE chain = $12`,
);

/**
 * The common case in one statement: a free chain head, locked; one row whose id is drawn and
 * hashed onto the head here (`SHA-256(prev_hash ‖ $1 ‖ id ‖ $2)`, as `auditHash`); the head moved.
 * No row back when every head is held right now.
 */
const APPEND_ONE_ON_FREE_HEAD = prepared(
  `WITH head AS (
     SELECT chain, last_hash FROM audit_chain_heads ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED),
   drawn AS (
     SELECT chain, last_hash AS prev_hash, nextval(pg_get_serial_sequence('audit_events', 'id')) AS id FROM head),
   hashed AS (
     SELECT chain, prev_hash, id,
            encode(sha256(decode(prev_hash, 'hex') || $1::bytea || convert_to(id::text, 'UTF8') || $2::bytea), 'hex') AS hash
       FROM drawn),
   appended AS (
     INSERT INTO audit_events
       (id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, correlation_id, prev_hash, hash, chain)
     SELECT id, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, prev_hash, hash, chain FROM hashed
     RETURNING 1)
   UPDATE audit_chain_heads SET last_id = hashed.id, last_hash = hashed.hash
     FROM hashed WHERE audit_chain_heads.chain = hashed.chain
 RETURNING hashed.chain, hashed.hash AS "lastHash"`,
);

interface ChainHead {
  chain: number;
  lastHash: string;
  drawn: string[];
}

interface PendingEntry {
  entry: AuditEntry;
  occurredAt: Date;
}

/** What a transaction holds: its rows waiting for the commit, and the chain it has appended to. */
interface TransactionAudit {
  pending: PendingEntry[];
  chain?: { chain: number; lastHash: string };
}

/** What a row's hash covers, but its id (drawn at the commit). */
function rowContent({ entry, occurredAt }: PendingEntry): Omit<AuditRecordContent, 'id'> {
  return {
    occurredAt,
    actor: entry.actor,
    action: entry.action,
    subject: entry.subject,
    details: entry.details ?? {},
    correlationId: entry.correlationId ?? null,
  };
}

/** A row's columns from occurred_at to correlation_id, in the order of the INSERTs. */
function rowColumns(content: Omit<AuditRecordContent, 'id'>): unknown[] {
  return [
    content.occurredAt,
    content.actor.type,
    content.actor.id,
    content.action,
    content.subject.type,
    content.subject.id,
    JSON.stringify(content.details),
    content.correlationId,
  ];
}

/** Per transaction (its query runner), shared by every AuditService on the same DataSource. */
const transactions = new WeakMap<QueryRunner, TransactionAudit>();
const flushing = new WeakSet<DataSource>();

/**
 * Writes the audit rows a transaction gathered as its last statements before COMMIT: lock a
 * free chain head (SKIP LOCKED; the row lock returns the head as last committed), hash the rows
 * onto it, insert them and move the head in one statement. A chain is held for one round trip
 * and the commit, however long the transaction ran before.
 */
class AuditFlushSubscriber implements EntitySubscriberInterface {
  async beforeTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const state = transactions.get(event.queryRunner);
    if (!state || state.pending.length === 0) return;
    const rows = state.pending;
    state.pending = [];
    const runner = event.manager;
    if (!state.chain && rows.length === 1 && (await this.appendOneOnFreeHead(event, state, rows[0]))) return;
    const ids = rows.length;
    let head = state.chain;
    let drawn: string[];
    if (head) {
      const [{ drawn: fresh }] = await runPrepared<{ drawn: string[] }>(runner, DRAW_IDS, [ids]);
      drawn = fresh;
    } else {
      const free = await runPrepared<ChainHead>(runner, TAKE_FREE_HEAD, [ids]);
      const taken =
        free[0] ??
        // Every head is held right now: wait for one (a transaction holds at most one, so no cycle).
        (await runPrepared<ChainHead>(runner, WAIT_FOR_HEAD, [randomInt(AUDIT_CHAINS), ids]))[0];
      if (!taken) throw new Error('audit_chain_heads holds no chain: run the migrations');
      head = { chain: taken.chain, lastHash: taken.lastHash };
      drawn = taken.drawn;
    }
    const columns: unknown[][] = Array.from({ length: 11 }, () => []);
    let prevHash = head.lastHash;
    rows.forEach((row, index) => {
      const content = { ...rowContent(row), id: drawn[index] };
      const hash = auditHash(prevHash, content);
      const values = [content.id, ...rowColumns(content), prevHash, hash];
      values.forEach((value, column) => columns[column].push(value));
      prevHash = hash;
    });
    // Raw insert: each id is part of its hashed content, so it must be the one drawn.
    await runPrepared(runner, APPEND_ROWS, [...columns, head.chain, drawn[drawn.length - 1], prevHash]);
    state.chain = { chain: head.chain, lastHash: prevHash };
  }

  /** One row onto a free chain head in one round trip; false when every head is held right now. */
  private async appendOneOnFreeHead(
    event: TransactionCommitEvent,
    state: TransactionAudit,
    row: PendingEntry,
  ): Promise<boolean> {
    const content = rowContent(row);
    const { prefix, suffix } = auditHashParts(content);
    const [moved] = await runPrepared<{ chain: number; lastHash: string }>(event.manager, APPEND_ONE_ON_FREE_HEAD, [
      prefix,
      suffix,
      ...rowColumns(content),
    ]);
    if (!moved) return false;
    state.chain = { chain: moved.chain, lastHash: moved.lastHash };
    return true;
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    transactions.delete(event.queryRunner);
  }
}

@Injectable()
export class AuditService {
  constructor(private readonly dataSource: DataSource) {
    if (!flushing.has(dataSource)) {
      flushing.add(dataSource);
      dataSource.subscribers.push(new AuditFlushSubscriber());
    }
  }

  /**
   * Records one row in the caller's transaction, so it commits (or not) with the state change
   * it describes. The row is written with the transaction's others just before the commit, all
   * on one chain, in the order they were recorded. Outside a transaction, one of its own.
   */
  async append(manager: EntityManager, entry: AuditEntry): Promise<void> {
    const runner = manager.queryRunner;
    if (!runner?.isTransactionActive) return this.dataSource.transaction((inner) => this.append(inner, entry));
    let state = transactions.get(runner);
    if (!state) {
      state = { pending: [] };
      transactions.set(runner, state);
    }
    state.pending.push({ entry, occurredAt: new Date() });
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
    // One snapshot for every chain and head: rows and their head move together at commit.
    return this.dataSource.transaction('REPEATABLE READ', async (manager) => {
      const heads = new Map(
        (
          await manager.query<Array<{ chain: number; lastId: string | null; lastHash: string }>>(
            'SELECT chain, last_id::text AS "lastId", last_hash AS "lastHash" FROM audit_chain_heads',
          )
        ).map((head) => [head.chain, head]),
      );
      const chains = await manager.query<Array<{ chain: number }>>(
        'SELECT DISTINCT chain FROM audit_events ORDER BY chain',
      );
      let checked = 0;
      const digest = createHash('sha256');
      for (const { chain } of chains) {
        const result = await this.verifyChain(manager, chain);
        checked += result.checked;
        const head = heads.get(chain);
        // Rows cut off (or rewritten) at the end of a chain leave a well-linked chain behind; its head tells.
        const firstBroken =
          result.firstBroken ??
          (head && head.lastHash !== result.lastHash
            ? { id: head.lastId ?? result.lastId ?? '0', reason: 'head-mismatch' as const }
            : undefined);
        if (firstBroken) return { ok: false, checked, firstBroken, chains: chains.length, lastHash: result.lastHash };
        digest.update(result.lastHash);
      }
      return { ok: true, checked, chains: chains.length, lastHash: digest.digest('hex') };
    });
  }

  private async verifyChain(
    manager: EntityManager,
    chain: number,
  ): Promise<{ checked: number; lastHash: string; lastId?: string; firstBroken?: AuditVerification['firstBroken'] }> {
    const repository = manager.getRepository(AuditEvent);
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
      if (rows.length > 0) after = rows[rows.length - 1].id;
      if (rows.length < VERIFY_BATCH) return { checked, lastHash: prevHash, lastId: after };
    }
  }
}
