import { Validator } from '@seriousme/openapi-schema-validator';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export async function validateOpenApi(json: string): Promise<string[]> {
  const validator = new Validator();
  const result = await validator.validate(JSON.parse(json) as Record<string, unknown>);
  if (result.valid) return [];
  const errors = result.errors ?? 'invalid';
  return typeof errors === 'string' ? [errors] : errors.map((error) => `${error.instancePath} ${error.message ?? ''}`);
}

/**
 * Validates a generated document, then writes it to `file`, or with `check` only compares it
 * with the committed file. Returns the exit code.
 */
export async function exportOpenApi(
  file: string,
  json: string,
  options: { check: boolean; regenerate: string },
): Promise<number> {
  const errors = await validateOpenApi(json);
  if (errors.length > 0) {
    process.stderr.write(`openapi: the generated document is not valid OpenAPI:\n${errors.join('\n')}\n`);
    return 1;
  }
  const name = `${basename(dirname(file))}/${basename(file)}`;
  if (options.check) {
    let committed = '';
    try {
      committed = readFileSync(file, 'utf8');
    } catch {
      // a missing file is stale
    }
    if (committed !== json) {
      process.stderr.write(`openapi: ${name} is stale; run "${options.regenerate}" and commit it\n`);
      return 1;
    }
    process.stdout.write(`openapi: ${name} is current and valid\n`);
    return 0;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, json);
  process.stdout.write(`openapi: wrote ${file}\n`);
  return 0;
}

/** Runs an export entry point: exit code from `run`, one line on failure. */
export function runOpenApiMain(run: () => Promise<number>): void {
  run().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`openapi: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
