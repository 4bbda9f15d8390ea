import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { ADMIN_DATABASE_URL, BENCH_REDIS_URL } from './api-system.js';
import { renderBenchmarks, type BenchmarksReport } from './benchmarks-markdown.js';
import { progress, quickRun, type BenchResult } from './report.js';

/**
 * `npm run bench [-- --quick] [-- --skip name,…]`: runs every benchmark below with `--json`, one
 * after another, then writes docs/BENCHMARKS.md. A listed benchmark that is not built stops the
 * run with one line before anything runs; `--skip` leaves one out and the file says so.
 */
export const BENCHMARKS = ['transactions', 'pairing', 'api', 'revocation'] as const;

const ROOT = join(__dirname, '../..');
const LIBRARIES = [
  '@nestjs/core',
  'fastify',
  'typeorm',
  'pg',
  'bullmq',
  'ioredis',
  '@peculiar/x509',
  '@noble/curves',
  'jose',
] as const;

class RunError extends Error {}

function skippedOnRequest(): string[] {
  const index = process.argv.indexOf('--skip');
  if (index < 0) return [];
  const names = (process.argv[index + 1] ?? '').split(',').filter(Boolean);
  const unknown = names.filter((name) => !(BENCHMARKS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) {
    throw new RunError(`--skip takes names from ${BENCHMARKS.join(', ')}; got "${process.argv[index + 1] ?? ''}"`);
  }
  return names;
}

function isResults(value: unknown): value is { results: BenchResult[] } {
  const results = (value as { results?: unknown } | null)?.results;
  return (
    Array.isArray(results) &&
    results.every(
      (r: Partial<BenchResult>) =>
        typeof r.name === 'string' &&
        typeof r.value === 'number' &&
        typeof r.unit === 'string' &&
        typeof r.floor === 'number' &&
        (r.target === null || typeof r.target === 'number') &&
        (r.ok === null || typeof r.ok === 'boolean'),
    )
  );
}

function runBenchmark(name: string, script: string): Promise<BenchResult[]> {
  progress(`\n▶ bench:${name}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--json', ...(quickRun ? ['--quick'] : [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) return reject(new RunError(`bench:${name} failed (exit ${code ?? signal})`));
      let parsed: unknown;
      try {
        parsed = JSON.parse(stdout);
      } catch {
        return reject(new RunError(`bench:${name} printed no JSON results on stdout`));
      }
      if (!isResults(parsed)) return reject(new RunError(`bench:${name} printed JSON without a valid "results" list`));
      resolve(parsed.results);
    });
  });
}

function operatingSystem(): string {
  try {
    const name = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (name) return `${name} (${type()} ${release()})`;
  } catch {
    // no os-release: the kernel alone says enough
  }
  return `${type()} ${release()}`;
}

async function serverVersions(): Promise<Record<string, string>> {
  const pg = new Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 5_000 });
  const redis = new Redis(BENCH_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await pg.connect();
    await redis.connect();
    const postgres = (await pg.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
    const info = await redis.info('server');
    return { PostgreSQL: postgres, Redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' };
  } finally {
    await pg.end().catch(() => undefined);
    redis.disconnect();
  }
}

function libraryVersion(name: string): string {
  const manifest = join(ROOT, 'node_modules', name, 'package.json');
  return existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version : 'missing';
}

async function main(): Promise<void> {
  const skipped = skippedOnRequest();
  const planned = BENCHMARKS.filter((name) => !skipped.includes(name)).map((name) => ({
    name,
    script: join(__dirname, `${name}.js`),
  }));
  const missing = planned.filter((benchmark) => !existsSync(benchmark.script));
  if (missing.length > 0) {
    throw new RunError(
      `${missing.map((b) => `dist/bench/${b.name}.js`).join(', ')} not found: build it ("npm run build") or leave it out with --skip ${missing.map((b) => b.name).join(',')}`,
    );
  }
  const benchmarks: Array<{ name: string; results: BenchResult[] }> = [];
  for (const benchmark of planned) {
    benchmarks.push({ name: benchmark.name, results: await runBenchmark(benchmark.name, benchmark.script) });
  }
  const cpu = cpus();
  const report: BenchmarksReport = {
    date: new Date().toISOString().slice(0, 10),
    quick: quickRun,
    machine: {
      CPU: cpu[0]?.model ?? 'unknown',
      cores: String(cpu.length),
      memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
      OS: operatingSystem(),
    },
    versions: {
      node: process.version,
      ...(await serverVersions()),
      ...Object.fromEntries(LIBRARIES.map((name) => [name, libraryVersion(name)])),
    },
    benchmarks,
    skipped,
  };
  const out = join(ROOT, 'docs/BENCHMARKS.md');
  writeFileSync(out, renderBenchmarks(report));
  const figures = benchmarks.flatMap((b) => b.results);
  progress(
    `\nwrote docs/BENCHMARKS.md: ${figures.length} figures, ${figures.filter((r) => r.ok === false).length} targets missed`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench: ${error instanceof RunError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
