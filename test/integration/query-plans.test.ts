import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Every module of the api and the worker: loading them declares every prepared statement.
import '../../src/app/app.modules.js';
import '../../src/app/worker.module.js';
import { preparedStatements } from '../../src/database/prepared.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

/** Tables whose every row a statement may read: one row per audit chain. */
const SMALL_TABLES = new Set(['audit_chain_heads']);
/** Indexes a statement walks on purpose, in index order, without a condition. */
const WALKED_INDEXES = new Set([
  'outbox_unpublished', // the relay claims the oldest unpublished rows
  'PK_audit_chain_heads_chain', // a chain head by position when every head is held
]);

function* nodes(plan: PlanNode): Generator<PlanNode> {
  yield plan;
  for (const child of plan.Plans ?? []) yield* nodes(child);
}

/**
 * A prepared statement keeps the plan PostgreSQL made for it, possibly while its tables were
 * empty and had no statistics: the hot paths' statements must have only good plans to choose
 * from. On a freshly migrated database, with the generic plan forced, none reads a whole table
 * and every index it scans is entered by its leading column.
 */
describe('prepared statements: plans that stay good whatever the statistics', () => {
  let database: TestDatabase;
  let client: Client;
  let leadingColumn: Map<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new Client({ connectionString: database.url });
    await client.connect();
    await client.query('SET plan_cache_mode = force_generic_plan');
    const { rows } = await client.query<{ index: string; column: string }>(
      `SELECT c.relname AS index, a.attname AS column
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]`,
    );
    leadingColumn = new Map(rows.map((row) => [row.index, row.column]));
  });

  afterAll(async () => {
    await client?.end();
    await database?.drop();
  });

  async function planOf(name: string, text: string): Promise<PlanNode> {
    await client.query(`PREPARE ${name} AS ${text}`);
    const {
      rows: [{ count }],
    } = await client.query<{ count: number }>(
      'SELECT cardinality(parameter_types) AS count FROM pg_prepared_statements WHERE name = $1',
      [name],
    );
    // EXPLAIN without ANALYZE runs nothing; with the generic plan forced, the values do not matter.
    const args = count > 0 ? `(${Array.from({ length: count }, () => 'NULL').join(', ')})` : '';
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      `EXPLAIN (FORMAT JSON) EXECUTE ${name}${args}`,
    );
    return rows[0]['QUERY PLAN'][0].Plan;
  }

  /** What is wrong with one plan node, if anything. */
  function fault(node: PlanNode): string | undefined {
    if (node['Node Type'] === 'Seq Scan' && !SMALL_TABLES.has(node['Relation Name']!)) {
      return `reads all of ${node['Relation Name']}`;
    }
    const index = node['Index Name'];
    if (!index || WALKED_INDEXES.has(index)) return undefined;
    const leading = leadingColumn.get(index);
    if (!leading) return `scans ${index}, which the schema does not have`;
    if (!new RegExp(`\\b${leading}\\b`).test(node['Index Cond'] ?? '')) {
      return `scans ${index} without a condition on its leading column ${leading} (${node['Index Cond'] ?? 'none'})`;
    }
    return undefined;
  }

  it('checks every statement the api and the worker prepare', () => {
    // The lifecycle, ledger, relay, notification and audit statements, at least.
    expect(preparedStatements().length).toBeGreaterThanOrEqual(20);
  });

  it('plans none that reads a whole table or scans an index it cannot enter', async () => {
    const faults: string[] = [];
    for (const { name, text } of preparedStatements()) {
      for (const node of nodes(await planOf(name, text))) {
        const found = fault(node);
        if (found) faults.push(`${text.replace(/\s+/g, ' ').slice(0, 80)}…: ${found}`);
      }
    }
    expect(faults).toEqual([]);
  });

  it('flags the plans it is there to catch', async () => {
    // Found by id, with the status the partial index is built on, and no primary key to take
    // (dropped in a transaction rolled back below): the partial index or the whole table.
    await client.query('BEGIN');
    let byIdAndStatus: PlanNode;
    try {
      await client.query('ALTER TABLE partner_notifications DROP CONSTRAINT "PK_c740b17cfc07d6e14114f96ef65"');
      byIdAndStatus = await planOf(
        'plan_check_partial',
        `UPDATE partner_notifications SET status = 'sending' WHERE id = $1 AND status = 'pending'`,
      );
    } finally {
      await client.query('ROLLBACK');
    }
    // The car's column left out of a lookup in (vehicle_id, seq).
    const bySeqOnly = await planOf('plan_check_seq', `SELECT id FROM deliveries WHERE seq = $1`);
    const faults = [...nodes(byIdAndStatus), ...nodes(bySeqOnly)].map(fault).filter(Boolean);
    expect(faults).toEqual([
      expect.stringMatching(
        /scans partner_notifications_open without a condition on its leading column|reads all of partner_notifications/,
      ),
      expect.stringMatching(/reads all of deliveries|scans deliveries_vehicle_seq without a condition/),
    ]);
  });
});
