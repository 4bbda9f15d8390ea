import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** Server-level connection used to create and drop the tests' databases. */
export const TEST_ADMIN_DATABASE_URL =
  process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@localhost:5432/postgres';
/** Every test database starts with this; the global setup names each run `dks_t_<epoch>_<random>`. */
export const TEST_DATABASE_PREFIX = 'dks_t_';

function currentRun(): string {
  const run = process.env.DKS_TEST_RUN;
  if (!run) throw new Error('DKS_TEST_RUN is not set: run the tests through vitest (its global setup sets it)');
  return run;
}

export function databaseUrl(name: string): string {
  const url = new URL(TEST_ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function withAdminClient<T>(action: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: TEST_ADMIN_DATABASE_URL, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await action(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database per test file, cloned from the template the global setup migrated. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const run = currentRun();
  const name = `${run}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdminClient((client) => client.query(`CREATE DATABASE "${name}" TEMPLATE "${run}_template"`));
  return {
    name,
    url: databaseUrl(name),
    drop: () =>
      withAdminClient((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * One digest per table of everything the product stores (migrations bookkeeping aside), to show
 * a refused request changed nothing: equal before and after.
 */
export async function databaseDigest(query: <T>(sql: string) => Promise<T>): Promise<Record<string, string>> {
  const tables = await query<Array<{ name: string }>>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'migrations' ORDER BY 1`,
  );
  const digest: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await query<Array<{ n: number; md5: string | null }>>(
      `SELECT count(*)::int AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS md5 FROM "${name}" t`,
    );
    digest[name] = `${row.n}:${row.md5 ?? '-'}`;
  }
  return digest;
}
