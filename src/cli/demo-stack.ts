import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { writeDevPki } from '../pki/dev-pki.js';
import { httpJson } from '../sim/world/http-json.js';
import { CliError } from './cli-framework.js';

/** Where the demo's processes are, and how to stop the ones it started. */
export interface DemoStack {
  adminUrl: string;
  simUrl: string;
  /** "api", "worker", "sim": the processes the demo started (the others were running). */
  started: string[];
  /** Where the started processes write their output. */
  logDir: string;
  stop(): Promise<void>;
}

type Env = Record<string, string | undefined>;

const DIST = resolve(__dirname, '..');

async function healthy(url: string): Promise<boolean> {
  try {
    return (await httpJson('GET', `${url}/health`)).status === 200;
  } catch {
    return false;
  }
}

function portOf(url: string): string {
  const parsed = new URL(url);
  return parsed.port || (parsed.protocol === 'https:' ? '443' : '80');
}

/** Drops and creates the demo's own database (never the development one), then migrates it. */
async function freshDatabase(databaseUrl: string, env: Env, say: (line: string) => void): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  const server = new URL(databaseUrl);
  server.pathname = '/postgres';
  const client = new Client({ connectionString: server.toString(), connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const quoted = `"${name.replace(/"/g, '""')}"`;
    await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoted}`);
  } catch (error) {
    throw new CliError(
      `PostgreSQL at ${target.host} cannot be used (${error instanceof Error ? error.message : String(error)}): start it or set DEMO_DATABASE_URL`,
      3,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  const migrate = spawnSync(process.execPath, [join(DIST, 'database', 'migrate.js')], {
    env: { ...env, DATABASE_URL: databaseUrl },
    encoding: 'utf8',
  });
  if (migrate.status !== 0) throw new CliError(`migrating ${name} failed: ${migrate.stderr.trim().split('\n').pop()}`);
  say(`database ${name} at ${target.host} created afresh for the demo and migrated`);
}

/**
 * Uses the api (admin listener) and the simulator when their health endpoints answer; starts
 * the missing ones as child processes: api and worker on the demo's own database (recreated),
 * the simulator on its own state file (removed first). Output of started processes goes to
 * files in `DEMO_DIR` (default .dev/demo).
 */
export async function startDemoStack(
  urls: { adminUrl: string; simUrl: string },
  env: Env,
  say: (line: string) => void,
): Promise<DemoStack> {
  const logDir = resolve(env.DEMO_DIR ?? '.dev/demo');
  mkdirSync(logDir, { recursive: true });
  const children: Array<{ name: string; child: ChildProcess }> = [];
  const stack: DemoStack = {
    ...urls,
    started: [],
    logDir,
    async stop() {
      await Promise.all(children.map(({ child }) => stopChild(child)));
    },
  };
  const start = (name: string, script: string, childEnv: Env): void => {
    const log = openSync(join(logDir, `${name}.log`), 'w');
    const child = spawn(process.execPath, [join(DIST, script)], { env: childEnv, stdio: ['ignore', log, log] });
    children.push({ name, child });
    stack.started.push(name);
  };

  const [adminUp, simUp] = await Promise.all([healthy(urls.adminUrl), healthy(urls.simUrl)]);
  const pkiDir = resolve(env.PKI_DIR ?? '.dev/pki');
  const apiPort = env.API_PORT ?? '8443';
  const deviceOemPort = env.SIM_DEVICE_OEM_PORT ?? '9443';
  const telematicsPort = env.SIM_TELEMATICS_PORT ?? '9444';
  if (!adminUp || !simUp) {
    const pki = await writeDevPki(pkiDir);
    if (pki.created) say(`development PKI created in ${pkiDir}`);
  }
  try {
    if (adminUp) say(`using the running server at ${urls.adminUrl}`);
    else {
      const databaseUrl = env.DEMO_DATABASE_URL ?? 'postgres://postgres@localhost:5432/digital_key_demo';
      await freshDatabase(databaseUrl, env, say);
      const serverEnv: Env = {
        ...env,
        DATABASE_URL: databaseUrl,
        PKI_DIR: pkiDir,
        ADMIN_HOST: new URL(urls.adminUrl).hostname,
        ADMIN_PORT: portOf(urls.adminUrl),
        API_PORT: apiPort,
        PARTNER_NOTIFICATION_URLS: env.PARTNER_NOTIFICATION_URLS ?? `device-oem=https://localhost:${deviceOemPort}`,
        QUEUE_PREFIX: env.QUEUE_PREFIX ?? 'dks-demo',
        WORKER_METRICS_PORT: env.WORKER_METRICS_PORT ?? '0',
        // A car back in coverage gets its commands within a second or two.
        DELIVERY_BACKOFF_BASE_MS: env.DELIVERY_BACKOFF_BASE_MS ?? '200',
        DELIVERY_BACKOFF_MAX_MS: env.DELIVERY_BACKOFF_MAX_MS ?? '1000',
        DELIVERY_SWEEP_INTERVAL_MS: env.DELIVERY_SWEEP_INTERVAL_MS ?? '1000',
      };
      start('api', 'main.js', serverEnv);
      start('worker', 'worker.js', serverEnv);
    }
    if (simUp) say(`using the running simulator at ${urls.simUrl}`);
    else {
      const stateFile = join(logDir, 'sim-state.json');
      rmSync(stateFile, { force: true });
      start('sim', join('sim', 'main.js'), {
        ...env,
        SIM_PKI_DIR: pkiDir,
        SIM_CONTROL_HOST: new URL(urls.simUrl).hostname,
        SIM_CONTROL_PORT: portOf(urls.simUrl),
        SIM_DEVICE_OEM_PORT: deviceOemPort,
        SIM_TELEMATICS_PORT: telematicsPort,
        SIM_TELEMATICS_URL: env.SIM_TELEMATICS_URL ?? `https://localhost:${telematicsPort}`,
        SIM_SERVER_API_URL: env.SIM_SERVER_API_URL ?? `https://localhost:${apiPort}`,
        SIM_SERVER_ADMIN_URL: urls.adminUrl,
        SIM_STATE_FILE: stateFile,
      });
    }
    await waitUntilHealthy(stack, children);
  } catch (error) {
    await stack.stop();
    throw error;
  }
  if (stack.started.length > 0) say(`started ${stack.started.join(', ')} (output in ${logDir})`);
  return stack;
}

async function waitUntilHealthy(stack: DemoStack, children: Array<{ name: string; child: ChildProcess }>) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const exited = children.find(({ child }) => child.exitCode !== null || child.signalCode !== null);
    if (exited) {
      const log = join(stack.logDir, `${exited.name}.log`);
      const last = readFileSync(log, 'utf8').trim().split('\n').pop() ?? '';
      throw new CliError(`the ${exited.name} process exited at start (${last || 'no output'}); see ${log}`);
    }
    const [admin, sim] = await Promise.all([healthy(stack.adminUrl), healthy(stack.simUrl)]);
    if (admin && sim) return;
    if (Date.now() > deadline) {
      throw new CliError(
        `${admin ? 'the simulator' : 'the server'} did not become healthy within 60 s; see ${stack.logDir}`,
      );
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      done();
    });
    child.kill('SIGTERM');
  });
}
