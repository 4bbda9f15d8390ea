import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDevPki } from '../../src/pki/dev-pki.js';
import { createTestDatabase } from '../support/database.js';

/** Runs a built entry point (`npm test` builds first) and collects its exit code and stderr. */
function runEntry(
  entry: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [resolve('dist/src', entry)], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolvePromise({ code, stderr, ms: Date.now() - started });
    });
  });
}

describe('process start-up', () => {
  let dir: string;
  let base: Record<string, string>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dks-startup-'));
    await writeDevPki(join(dir, 'pki'));
    base = { PKI_DIR: join(dir, 'pki'), API_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'error' };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['main.js', 'worker.js'])('%s exits 1 naming a bad configuration value', async (entry) => {
    const result = await runEntry(entry, { ...base, DELIVERY_SWEEP_INTERVAL_MS: 'often' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('DELIVERY_SWEEP_INTERVAL_MS="often" is not valid');
    expect(result.stderr).not.toContain('    at ');
  });

  it('exits 1 quickly, naming PostgreSQL and its address, when the database is unreachable', async () => {
    const result = await runEntry('main.js', { ...base, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/digital_key' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('PostgreSQL is not reachable at postgres://postgres@127.0.0.1:1/digital_key');
    expect(result.stderr).toContain('docker compose up -d postgres redis');
    expect(result.ms).toBeLessThan(15_000);
  });

  it('exits 1 naming Redis and its address when Redis is unreachable', async () => {
    const database = await createTestDatabase();
    try {
      const result = await runEntry('worker.js', {
        ...base,
        DATABASE_URL: database.url,
        REDIS_URL: 'redis://127.0.0.1:1',
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('Redis is not reachable at redis://127.0.0.1:1');
      expect(result.ms).toBeLessThan(15_000);
    } finally {
      await database.drop();
    }
  });

  it('refuses to start on a database that is not migrated', async () => {
    const result = await runEntry('main.js', {
      ...base,
      DATABASE_URL: process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@localhost:5432/postgres',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is not migrated: run "npm run migration:run" first');
  });

  it('names the missing PKI and the command that creates it', async () => {
    const result = await runEntry('main.js', { ...base, PKI_DIR: join(dir, 'absent') });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('npm run pki:dev');
  });
});
