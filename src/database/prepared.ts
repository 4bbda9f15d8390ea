import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { EntityManager, type DataSource } from 'typeorm';

/**
 * A statement PostgreSQL parses and plans once per connection: a named prepared statement. The
 * hot paths' statements (CTEs with several parts) cost the server far more to plan than to run:
 * measured under the revocation benchmark, one of them took 320 µs of server CPU per execution
 * unnamed and 70 µs prepared. TypeORM sends every query unnamed, so these go to the `pg`
 * connection directly.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

const statements = new Map<string, PreparedStatement>();

/** The name is derived from the text, so two call sites with the same SQL share one statement. */
export function prepared(text: string): PreparedStatement {
  const statement = { name: `dks_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
  statements.set(statement.name, statement);
  return statement;
}

/** Every statement declared so far by the modules loaded in this process. */
export function preparedStatements(): readonly PreparedStatement[] {
  return [...statements.values()];
}

/**
 * A CTE for writes whose loss in a database crash is harmless because a resend repairs it
 * idempotently: a delivery lease, the relay's published mark, a notification marked delivered.
 * `set_config(…, true)` is `SET LOCAL` for the statement's transaction (its own, outside an
 * explicit one), which then commits without waiting for its WAL flush. PostgreSQL still keeps
 * the database consistent; a crash may only forget the last such commits. The statement must
 * read `relaxed_commit` (e.g. `UPDATE … FROM relaxed_commit`): a CTE nothing reads is not run.
 */
export const RELAXED_COMMIT = `relaxed_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS relaxed)`;

interface PgQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * Runs `statement` and returns its rows: inside the caller's transaction when `on` is an
 * EntityManager of one, else on a pooled connection.
 */
export async function runPrepared<T>(
  on: EntityManager | DataSource,
  statement: PreparedStatement,
  values: unknown[],
): Promise<T[]> {
  const manager = on instanceof EntityManager ? on : undefined;
  const runner = manager?.queryRunner;
  const dataSource = manager ? manager.dataSource : (on as DataSource);
  const connection: PgQueryable =
    runner && !runner.isReleased
      ? await (runner as unknown as { connect(): Promise<PoolClient> }).connect()
      : (dataSource.driver as unknown as { master: Pool }).master;
  const result = await connection.query({ name: statement.name, text: statement.text, values });
  return result.rows as T[];
}
