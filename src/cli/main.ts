import 'reflect-metadata';
import { resolve } from 'node:path';
import { issueOperatorToken } from '../common/auth/operator-token.js';
import { OPERATOR_SCOPES, type OperatorScope } from '../common/auth/operator-scopes.js';
import { writeDevPki } from '../pki/dev-pki.js';
import { CliError, runCli, stringOption, type CliCommand } from './cli-framework.js';
import { STACK_COMMANDS } from './stack-commands.js';
import { pkiDir, readOperatorTokenKey } from './stack.js';

const pkiDev: CliCommand = {
  name: 'pki:dev',
  summary: 'Create the development PKI (idempotent) in PKI_DIR (default .dev/pki)',
  usage: 'pki:dev [--force] [--dir <folder>] [--json]',
  async run(context) {
    const dir = typeof context.options.dir === 'string' ? resolve(context.options.dir) : pkiDir();
    const result = await writeDevPki(dir, { force: context.options.force === true });
    if (!context.json) {
      context.out(
        result.created
          ? `created the development PKI in ${dir}:`
          : `the development PKI in ${dir} is complete; kept it:`,
      );
      for (const file of result.files) context.out(`  ${file}`);
    }
    return result;
  },
};

const token: CliCommand = {
  name: 'token',
  summary: 'Print an operator token (ES256) signed with the dev operator-token key',
  usage: `token --scopes <${OPERATOR_SCOPES.join(',')}> [--subject <name>] [--ttl <seconds>] [--json]`,
  async run(context) {
    const scopes = stringOption(context, 'scopes', OPERATOR_SCOPES.join(','))
      .split(',')
      .map((scope) => scope.trim())
      .filter(Boolean);
    const unknown = scopes.filter((scope) => !(OPERATOR_SCOPES as readonly string[]).includes(scope));
    if (unknown.length > 0)
      throw new CliError(`unknown scope ${unknown.join(', ')}; known: ${OPERATOR_SCOPES.join(', ')}`, 2);
    const ttl = Number(stringOption(context, 'ttl', '3600'));
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 30 * 86_400)
      throw new CliError('--ttl must be 1 to 2592000 seconds', 2);
    const key = readOperatorTokenKey();
    const subject = stringOption(context, 'subject', 'operator');
    const jwt = await issueOperatorToken(key, { subject, scopes: scopes as OperatorScope[], ttlSeconds: ttl });
    if (!context.json) context.out(jwt);
    return { token: jwt, scopes, subject, expiresInSeconds: ttl };
  },
};

export const COMMANDS: CliCommand[] = [pkiDev, token, ...STACK_COMMANDS];

runCli('dks', COMMANDS, process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`dks: ${String(error)}\n`);
    process.exit(1);
  },
);
