import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source.js';
import { TEMPLATE_DATABASE, databaseUrl, withAdminClient } from './database.js';

/**
 * Runs once before all tests: checks PostgreSQL and Redis are there, (re)creates the template
 * database and applies every migration to it. Each test file then clones its own database.
 */
export default async function setup(): Promise<void> {
  await withAdminClient(async (client) => {
    const stale = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE 'dks\\_test\\_%'`,
    );
    for (const { datname } of stale.rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${TEMPLATE_DATABASE}"`);
  }).catch((error: unknown) => {
    throw new Error(
      `tests need PostgreSQL (TEST_DATABASE_ADMIN_URL or postgres://postgres@localhost:5432/postgres): ${String(error)}`,
    );
  });
  const dataSource = new DataSource(dataSourceOptions(databaseUrl(TEMPLATE_DATABASE)));
  await dataSource.initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  await dataSource.destroy();
}
