import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { DataSource } from 'typeorm';
import { ProcessModule, type ProcessResources } from '../src/app/app.modules.js';
import { dataSourceOptions } from '../src/database/data-source.js';

/**
 * The database side of the API benchmark: the project's services in a Nest context on their
 * own DataSource, and a recorder that keeps the SQL they send (text, parameters, result rows)
 * so that raw `pg` can send exactly the same statements to a copy of the database.
 */

@Module({})
class BenchServicesModule {
  static forRoot(resources: ProcessResources, imports: DynamicModule['imports']): DynamicModule {
    return { module: BenchServicesModule, imports: [ProcessModule.forRoot(resources), ...(imports ?? [])] };
  }
}

/** A Nest context holding `imports` (the same modules the api process uses) over `resources`. */
export function servicesContext(
  resources: ProcessResources,
  imports: DynamicModule['imports'],
): Promise<INestApplicationContext> {
  return NestFactory.createApplicationContext(BenchServicesModule.forRoot(resources, imports), { logger: false });
}

export interface RecordedQuery {
  readonly text: string;
  /** Set for a named prepared statement (`runPrepared`): raw pg replays it prepared too. */
  readonly name?: string;
  readonly values: readonly unknown[] | undefined;
  readonly rows: readonly Record<string, unknown>[];
}

/** A DataSource whose pooled connections report every statement to `recorder.current` when set. */
export async function recordingDataSource(url: string, recorder: { current?: RecordedQuery[] }): Promise<DataSource> {
  const dataSource = new DataSource(dataSourceOptions(url, { applicationName: 'dks-bench', poolSize: 10 }));
  await dataSource.initialize();
  const pool = (dataSource.driver as unknown as { master: Pool }).master;
  const wrapped = new WeakSet<PoolClient>();
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    type Config = { name?: string; text: string; values?: unknown[] };
    const query = client.query.bind(client) as (text: string | Config, values?: unknown[]) => Promise<QueryResult>;
    (client as unknown as { query: typeof query }).query = async (text: string | Config, values?: unknown[]) => {
      const result = await query(text, values);
      const rows = result.rows as Record<string, unknown>[];
      if (typeof text === 'string') recorder.current?.push({ text, values, rows });
      else recorder.current?.push({ text: text.text, name: text.name, values: text.values ?? values, rows });
      return result;
    };
  });
  return dataSource;
}

/**
 * Sends the recorded statements of one operation, in order, on one connection. Values the first
 * database generated (a row's default UUID) are swapped for the ones this database returns, so
 * later statements refer to the rows this replay created.
 */
export async function replay(pool: Pool, statements: readonly RecordedQuery[]): Promise<void> {
  const client = await pool.connect();
  const generated = new Map<unknown, unknown>();
  try {
    for (const statement of statements) {
      const values = statement.values?.map((value) => generated.get(value) ?? value);
      const result = statement.name
        ? await client.query({ name: statement.name, text: statement.text, values: values })
        : await client.query(statement.text, values as unknown[]);
      statement.rows.forEach((row, index) => {
        const now = result.rows[index] as Record<string, unknown> | undefined;
        for (const [column, value] of Object.entries(row)) {
          if (typeof value === 'string' && now && now[column] !== value) generated.set(value, now[column]);
        }
      });
    }
  } finally {
    client.release();
  }
}
