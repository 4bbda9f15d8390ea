import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source.js';

/**
 * PostgreSQL and Redis instances of one test file, on their own ports and in their own temp
 * directories, so that a test can stop, kill, fill or flush them without touching the shared
 * services other test files use at the same time.
 */

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A redis-server child process with its own port and data directory (append-only file on). */
export class PrivateRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'dks-redis-'));
  private child?: ChildProcess;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  static async start(options: { args?: string[] } = {}): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort(), options.args ?? []);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--maxmemory-policy',
      'noeviction',
      ...this.extraArgs,
    ];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await until(`redis-server on port ${this.port}`, async () => (await this.command('PING')) === 'PONG');
  }

  /** One command on a short-lived connection. */
  async command(...args: [string, ...Array<string | number>]): Promise<unknown> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(...args);
    } finally {
      client.disconnect();
    }
  }

  /** Clean shutdown (SIGTERM: the append-only file is flushed, the data survives a restart). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    await exited(child);
  }

  /** Crash: no flush. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGKILL');
    await exited(child);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const POSTGRES_BIN = (() => {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
})();

/** PostgreSQL refuses to run as root: run its tools as the `postgres` user then. */
function asPostgresUser(command: string, args: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', command, ...args] : [command, ...args];
}

/** Runs a PostgreSQL tool without blocking the event loop (servers under test live in this process too). */
function run(command: string, args: string[]): Promise<void> {
  const [bin, ...rest] = asPostgresUser(command, args);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${output}`)),
    );
  });
}

/** A throw-away PostgreSQL cluster (initdb + pg_ctl) with its own port and socket directory. */
export class PrivatePostgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'dks-pg-'));
  private readonly data = join(this.dir, 'data');
  private started = false;

  private constructor(
    readonly port: number,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    if (!POSTGRES_BIN) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) are not installed');
    const pg = new PrivatePostgres(await freePort(), POSTGRES_BIN);
    if (process.getuid?.() === 0) chownSync(pg.dir, Number(uidOf('postgres')), Number(gidOf('postgres')));
    await run(join(pg.bin, 'initdb'), ['-D', pg.data, '-U', 'postgres', '--auth=trust', '-N', '-E', 'UTF8']);
    await pg.start();
    return pg;
  }

  /** URL of a database in this cluster. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    if (this.started) return;
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    await run(join(this.bin, 'pg_ctl'), ['-D', this.data, '-o', options, '-l', join(this.dir, 'log'), '-w', 'start']);
    this.started = true;
    await until(`PostgreSQL on port ${this.port}`, async () => {
      const client = new Client({ connectionString: this.url(), connectionTimeoutMillis: 1_000 });
      await client.connect();
      await client.end();
      return true;
    });
  }

  /** Fast shutdown: open connections are closed, as in a failover or a restart of the server. */
  async stop(): Promise<void> {
    if (!this.started) return;
    await run(join(this.bin, 'pg_ctl'), ['-D', this.data, '-m', 'fast', '-w', 'stop']);
    this.started = false;
  }

  /** Crash: SIGKILL to the postmaster (the next start runs crash recovery). */
  async kill(): Promise<void> {
    if (!this.started) return;
    const pidFile = join(this.data, 'postmaster.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGKILL');
    await until('the killed postmaster to exit', () => {
      try {
        process.kill(pid, 0);
        return Promise.resolve(false);
      } catch {
        return Promise.resolve(true);
      }
    });
    this.started = false;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Creates a database and applies every migration to it; returns its URL. */
  async createMigratedDatabase(name = 'digital_key'): Promise<string> {
    const admin = new Client({ connectionString: this.url() });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    const dataSource = new DataSource(dataSourceOptions(this.url(name)));
    await dataSource.initialize();
    try {
      await dataSource.runMigrations({ transaction: 'each' });
    } finally {
      await dataSource.destroy();
    }
    return this.url(name);
  }

  async remove(): Promise<void> {
    try {
      if (this.started) await run(join(this.bin, 'pg_ctl'), ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already gone
    }
    this.started = false;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function idOf(flag: '-u' | '-g', user: string): string {
  const result = spawnSync('id', [flag, user], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`no user ${user} to run PostgreSQL as`);
  return result.stdout.trim();
}
const uidOf = (user: string) => idOf('-u', user);
const gidOf = (user: string) => idOf('-g', user);
