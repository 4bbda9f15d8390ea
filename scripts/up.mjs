// One command from a fresh clone to a running system on local PostgreSQL and Redis:
// install (when needed), build, create the database, generate the dev PKI, migrate, then run
// the api and the worker in the foreground. Ctrl-C stops both.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const step = (message) => process.stdout.write(`\n▶ ${message}\n`);
const run = (command, args, env = process.env) => {
  const result = spawnSync(command, args, { stdio: 'inherit', env });
  if (result.status !== 0) {
    process.stderr.write(`\n✗ "${command} ${args.join(' ')}" failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
};

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@localhost:5432/digital_key';
const env = { ...process.env, DATABASE_URL: databaseUrl };

if (!existsSync('node_modules')) {
  step('installing dependencies (npm ci)');
  run('npm', ['ci']);
}
step('building');
run('npm', ['run', '--silent', 'build']);

step(`checking PostgreSQL (${new URL(databaseUrl).host}) and creating the database if needed`);
const pg = createRequire(import.meta.url)('pg');
const target = new URL(databaseUrl);
const database = decodeURIComponent(target.pathname.slice(1));
const serverUrl = new URL(databaseUrl);
serverUrl.pathname = '/postgres';
const client = new pg.Client({ connectionString: serverUrl.toString(), connectionTimeoutMillis: 5000 });
try {
  await client.connect();
  const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (exists.rowCount === 0) {
    await client.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    process.stdout.write(`created database ${database}\n`);
  } else {
    process.stdout.write(`database ${database} exists\n`);
  }
} catch (error) {
  process.stderr.write(
    `\n✗ PostgreSQL is not reachable at ${target.host}: ${error.message}\n` +
      '  Start it (a local service, or "docker compose up -d postgres redis") or set DATABASE_URL.\n',
  );
  process.exit(1);
} finally {
  await client.end().catch(() => undefined);
}

step('development PKI');
run('node', ['dist/src/cli/main.js', 'pki:dev'], env);
step('migrating');
run('npm', ['run', '--silent', 'migration:run'], env);

step('starting api and worker (Ctrl-C stops them)');
const children = ['main', 'worker'].map((name) => {
  const child = spawn('node', [`dist/src/${name}.js`], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`\n✗ ${name === 'main' ? 'api' : name} exited (${code ?? signal}); stopping\n`);
      stop(code ?? 1);
    }
  });
  return child;
});
let stopping = false;
function stop(code = 0) {
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 2000).unref();
  Promise.all(
    children.map(
      (child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve))),
    ),
  ).then(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
const adminUrl = `http://${process.env.ADMIN_HOST ?? '127.0.0.1'}:${process.env.ADMIN_PORT ?? '8080'}`;
for (let i = 0; i < 120 && !stopping; i++) {
  const healthy = await fetch(`${adminUrl}/health`).then(
    (res) => res.ok,
    () => false,
  );
  if (healthy) {
    process.stdout.write(
      [
        '',
        'digital-key-server is up:',
        `  operator console   ${adminUrl}/docs`,
        `  queue dashboard    ${adminUrl}/queues?token=<operator token>`,
        `  health / metrics   ${adminUrl}/health  ${adminUrl}/metrics`,
        '  partner + vehicle  https://localhost:8443 (mTLS; certificates in .dev/pki)',
        '  operator token     npm run --silent cli -- token --scopes vehicles:write,keys:read,keys:write,audit:read',
        '',
      ].join('\n'),
    );
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}
