import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAXED_COMMIT } from '../../src/database/prepared.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/** The relaxed-commit CTE on real PostgreSQL: the write commits asynchronously and nothing else does. */
describe('RELAXED_COMMIT', () => {
  let database: TestDatabase;
  let client: Client;
  const setting = async () =>
    (await client.query<{ value: string }>(`SELECT current_setting('synchronous_commit') AS value`)).rows[0].value;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new Client({ connectionString: database.url });
    await client.connect();
    await client.query('CREATE TABLE leases (id int PRIMARY KEY, holder text)');
    await client.query(`INSERT INTO leases VALUES (1, NULL), (2, NULL)`);
  });

  afterAll(async () => {
    await client?.end();
    await database?.drop();
  });

  const lease = (id: number, holder: string) =>
    client.query<{ id: number; during: string }>(
      `WITH ${RELAXED_COMMIT}
       UPDATE leases SET holder = $2 FROM relaxed_commit WHERE id = $1
    RETURNING id, current_setting('synchronous_commit') AS during`,
      [id, holder],
    );

  it('commits its own statement without waiting for the WAL flush, and the setting ends with it', async () => {
    expect(await setting()).toBe('on');
    const { rows } = await lease(1, 'worker-a');
    expect(rows).toEqual([{ id: 1, during: 'off' }]);
    expect(await setting()).toBe('on');
    expect((await client.query('SELECT holder FROM leases WHERE id = 1')).rows).toEqual([{ holder: 'worker-a' }]);
  });

  it('relaxes the whole explicit transaction it runs in, and only that one', async () => {
    await client.query('BEGIN');
    await lease(2, 'worker-b');
    expect(await setting()).toBe('off');
    await client.query('COMMIT');
    expect(await setting()).toBe('on');
    expect((await client.query('SELECT holder FROM leases WHERE id = 2')).rows).toEqual([{ holder: 'worker-b' }]);
  });

  it('takes no effect when no row is written: the statement still runs and changes nothing', async () => {
    const { rows } = await lease(99, 'nobody');
    expect(rows).toEqual([]);
    expect(await setting()).toBe('on');
  });
});
