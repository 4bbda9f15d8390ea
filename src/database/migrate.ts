import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { DEFAULT_DATABASE_URL, dataSourceOptions } from './data-source.js';

/**
 * `npm run migration:run`: applies pending migrations, one transaction each, and says which.
 * Used by the quick start and by the one-shot `migrate` service of docker-compose.
 */
async function migrate(): Promise<void> {
  const url = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const dataSource = new DataSource(dataSourceOptions(url, { applicationName: 'dks-migrate', poolSize: 1 }));
  try {
    await dataSource.initialize();
  } catch (error) {
    const host = new URL(url).host;
    throw new Error(
      `PostgreSQL is not reachable at ${host} (${(error as Error).message}); start it or set DATABASE_URL`,
    );
  }
  try {
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (applied.length === 0) process.stdout.write('migrate: the database is up to date\n');
    for (const migration of applied) process.stdout.write(`migrate: applied ${migration.name}\n`);
  } finally {
    await dataSource.destroy();
  }
}

migrate().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`migrate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
