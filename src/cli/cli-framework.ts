/** A tiny, dependency-free command-line layer: subcommands, `--flag value` options, `--help`, `--json`. */
export interface CommandContext {
  options: Record<string, string | boolean>;
  positionals: string[];
  json: boolean;
  out: (line: string) => void;
}

export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  run(context: CommandContext): Promise<unknown>;
}

/** A usage error or a refused operation: one clear line, exit code 1 (2 for usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export function parseArguments(argv: string[]): { positionals: string[]; options: Record<string, string | boolean> } {
  const positionals: string[] = [];
  const options: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq > 0) {
        options[arg.slice(2, eq)] = arg.slice(eq + 1);
      } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
        options[arg.slice(2)] = argv[++i];
      } else {
        options[arg.slice(2)] = true;
      }
    } else {
      positionals.push(arg);
    }
  }
  return { positionals, options };
}

export function stringOption(context: CommandContext, name: string, fallback?: string): string {
  const value = context.options[name];
  if (typeof value === 'string' && value.length > 0) return value;
  if (fallback !== undefined) return fallback;
  throw new CliError(`--${name} is required`, 2);
}

function helpText(program: string, commands: CliCommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `usage: ${program} <command> [options]`,
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run "${program} <command> --help" for a command's options. Add --json for machine-readable output.`,
  ].join('\n');
}

export async function runCli(program: string, commands: CliCommand[], argv: string[]): Promise<number> {
  const { positionals, options } = parseArguments(argv);
  const [name, ...rest] = positionals;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (!name || name === 'help' || (options.help && !name)) {
    out(helpText(program, commands));
    return name ? 0 : options.help ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`${program}: unknown command "${name}"\n\n${helpText(program, commands)}\n`);
    return 2;
  }
  if (options.help) {
    out(`usage: ${program} ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  const json = options.json === true;
  try {
    const result = await command.run({ options, positionals: rest, json, out });
    if (json && result !== undefined) out(JSON.stringify(result, null, 2));
    return 0;
  } catch (error) {
    const cliError = error instanceof CliError ? error : undefined;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${program} ${name}: ${message}\n`);
    if (cliError?.detail !== undefined) process.stderr.write(`${JSON.stringify(cliError.detail, null, 2)}\n`);
    return cliError?.exitCode ?? 1;
  }
}
