// Fails when the entities and the migrations disagree: applies every migration to a scratch
// database, then asks TypeORM whether it would generate anything more.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const admin = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@localhost:5432/postgres';
const name = `dks_migration_check_${randomBytes(4).toString('hex')}`;
const url = new URL(admin);
url.pathname = `/${name}`;

async function sql(statement) {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function typeorm(...args) {
  return spawnSync('npx', ['typeorm', '-d', 'dist/src/database/data-source.js', ...args], {
    env: { ...process.env, DATABASE_URL: url.toString() },
    encoding: 'utf8',
  });
}

await sql(`CREATE DATABASE "${name}"`);
let code = 1;
try {
  const run = typeorm('migration:run');
  if (run.status !== 0) {
    process.stderr.write(run.stdout + run.stderr);
    throw new Error('migrations do not apply to an empty database');
  }
  const check = typeorm('migration:generate', 'migrations/Drift', '--check');
  if (check.status !== 0) {
    process.stderr.write(check.stdout + check.stderr);
    process.stderr.write('migration:check: the entities and the migrations have drifted apart; generate a migration\n');
  } else {
    process.stdout.write('migration:check: entities and migrations agree\n');
    code = 0;
  }
} catch (error) {
  process.stderr.write(`migration:check: ${error.message}\n`);
} finally {
  await sql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}
process.exit(code);
