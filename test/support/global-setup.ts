import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source.js';
import { TEST_DATABASE_PREFIX, databaseUrl, withAdminClient } from './database.js';

const STALE_AFTER_SECONDS = 6 * 3600;

/**
 * Runs once before all tests: creates this run's template database and applies every
 * migration to it; each test file then clones its own database from it. Databases of other
 * runs are left alone unless they are hours old (a crashed run), so concurrent runs coexist.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const run = `${TEST_DATABASE_PREFIX}${Math.floor(Date.now() / 1000)}_${randomBytes(3).toString('hex')}`;
  const template = `${run}_template`;
  process.env.DKS_TEST_RUN = run;
  await withAdminClient(async (client) => {
    const all = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE 'dks\\_t\\_%'`,
    );
    const now = Date.now() / 1000;
    for (const { datname } of all.rows) {
      const started = Number(/^dks_t_(\d+)_/.exec(datname)?.[1] ?? 0);
      if (now - started > STALE_AFTER_SECONDS) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await client.query(`CREATE DATABASE "${template}"`);
  }).catch((error: unknown) => {
    throw new Error(
      `tests need PostgreSQL (TEST_DATABASE_ADMIN_URL or postgres://postgres@localhost:5432/postgres): ${String(error)}`,
    );
  });
  const dataSource = new DataSource(dataSourceOptions(databaseUrl(template)));
  await dataSource.initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  await dataSource.destroy();
  return async () => {
    await withAdminClient(async (client) => {
      const mine = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
        [run],
      );
      for (const { datname } of mine.rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    });
  };
}
