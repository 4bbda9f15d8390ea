import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { issueOperatorToken } from '../../src/common/auth/operator-token.js';
import { writePkiSet } from '../../src/pki/dev-pki.js';
import {
  DEAD_NOTIFICATION_URLS,
  FAST_DELIVERY_ENV,
  fingerprintOf,
  type SystemEndpoints,
  type TestPki,
} from './harness.js';

/**
 * The built api and worker (`dist/`, which `npm test` builds first) as real processes, for
 * faults that need a process to die (SIGKILL) or several replicas on one database and Redis.
 */

export interface ServerProcess {
  readonly role: 'api' | 'worker';
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  readonly stderr: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ApiProcess extends ServerProcess, SystemEndpoints {}

export interface ProcessEnvironment {
  pki: TestPki;
  databaseUrl: string;
  redisUrl: string;
  /** Extra variables, e.g. delivery timings. */
  env?: Record<string, string>;
}

/** A PKI directory and the environment every process of one system shares. */
export class ProcessSystem {
  readonly dir = mkdtempSync(join(tmpdir(), 'dks-processes-'));
  readonly processes: ServerProcess[] = [];
  private readonly env: Record<string, string>;

  constructor(private readonly options: ProcessEnvironment) {
    writePkiSet(join(this.dir, 'pki'), options.pki.set);
    this.env = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      PKI_DIR: join(this.dir, 'pki'),
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      ADMIN_PORT: '0',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
      QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      PARTNER_ALLOWLIST: [
        `device-oem=${fingerprintOf(options.pki.set.deviceOemClientCert)}`,
        `other-oem=${fingerprintOf(options.pki.otherPartner.certPem)}`,
      ].join(','),
      PARTNER_NOTIFICATION_URLS: DEAD_NOTIFICATION_URLS,
      ...FAST_DELIVERY_ENV,
      PAIRING_SCRYPT_N: '1024',
      ...options.env,
    };
  }

  async startApi(): Promise<ApiProcess> {
    const started = await this.spawn('api', 'main.js', /admin on http:\/\/[^:]+:(\d+)/);
    const adminPort = started.match[1];
    const apiPort = /mTLS listener on https:\/\/[^:]+:(\d+)/.exec(started.process.stderr())![1];
    const pki = this.options.pki;
    return Object.assign(started.process, {
      pki,
      adminUrl: `http://127.0.0.1:${adminPort}`,
      apiUrl: `https://127.0.0.1:${apiPort}`,
      operatorToken: (scopes: Parameters<SystemEndpoints['operatorToken']>[0]) =>
        issueOperatorToken(pki.set.operatorTokenKey, { subject: 'test-operator', scopes, ttlSeconds: 600 }),
    });
  }

  async startWorker(): Promise<ServerProcess> {
    return (await this.spawn('worker', 'worker.js', /worker: .* running/)).process;
  }

  private spawn(
    role: 'api' | 'worker',
    entry: string,
    ready: RegExp,
  ): Promise<{ process: ServerProcess; match: RegExpExecArray }> {
    const child = spawn(process.execPath, [resolve('dist/src', entry)], {
      env: this.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const handle: ServerProcess = {
      role,
      child,
      stderr: () => stderr,
      async kill(signal = 'SIGKILL') {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((done) => child.once('exit', () => done()));
        child.kill(signal);
        await exited;
      },
    };
    this.processes.push(handle);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${role} did not start within 20 s: ${stderr}`));
      }, 20_000);
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        const match = ready.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolvePromise({ process: handle, match });
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${role} exited (${code ?? signal}) before it was ready: ${stderr}`));
      });
    });
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes the PKI directory. */
  async stop(): Promise<void> {
    await Promise.all(
      this.processes.map(async (proc) => {
        const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5_000);
        await proc.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}
