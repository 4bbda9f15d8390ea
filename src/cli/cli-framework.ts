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

/** A usage error or a refused operation: one clear line, exit code 1 (2 for usage, 3 when a service cannot be reached). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

/** Options that never take a value: `--json abc` is the flag and the positional `abc`. */
const FLAGS = new Set(['json', 'help', 'force']);

export function parseArguments(argv: string[]): { positionals: string[]; options: Record<string, string | boolean> } {
  const positionals: string[] = [];
  const options: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq > 0) {
        options[arg.slice(2, eq)] = arg.slice(eq + 1);
      } else if (!FLAGS.has(arg.slice(2)) && i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
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

/** The command whose (possibly two-word) name starts the positionals: `vehicle add` before `vehicle`. */
function findCommand(commands: CliCommand[], positionals: string[]): { command?: CliCommand; rest: string[] } {
  for (const words of [2, 1]) {
    const name = positionals.slice(0, words).join(' ');
    const command = positionals.length >= words ? commands.find((c) => c.name === name) : undefined;
    if (command) return { command, rest: positionals.slice(words) };
  }
  return { rest: positionals };
}

/** Left-aligned columns under a header, for readable lists. */
export function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export async function runCli(program: string, commands: CliCommand[], argv: string[]): Promise<number> {
  const { positionals, options } = parseArguments(argv);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (positionals.length === 0 || positionals[0] === 'help') {
    out(helpText(program, commands));
    return positionals.length > 0 || options.help ? 0 : 2;
  }
  const { command, rest } = findCommand(commands, positionals);
  if (!command) {
    process.stderr.write(`error: unknown command "${positionals.join(' ')}"\n\n${helpText(program, commands)}\n`);
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
    process.stderr.write(`error: ${message}\n`);
    if (json) {
      out(
        JSON.stringify(
          { error: message, ...(cliError?.detail === undefined ? {} : { problem: cliError.detail }) },
          null,
          2,
        ),
      );
    }
    return cliError?.exitCode ?? 1;
  }
}
