import 'reflect-metadata';
import { Validator } from '@seriousme/openapi-schema-validator';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { loadConfig, pkiMaterialFromSet } from '../config/config.js';
import { dataSourceOptions } from '../database/data-source.js';
import type { AppMetrics } from '../metrics/metrics.js';
import { createPkiSet } from '../pki/dev-pki.js';
import { buildOpenApiDocument } from './openapi.js';
import { PRODUCT_VERSION, createApps } from './server.js';

export const OPENAPI_FILE = resolve('openapi/openapi.json');

/** Builds the document from the code without connecting to anything (Nest preview mode). */
export async function generateOpenApiJson(): Promise<string> {
  const pki = await createPkiSet();
  const config = loadConfig({ NODE_ENV: 'development' }, { pki: pkiMaterialFromSet(pki), defaultPartners: [] });
  const dataSource = new DataSource(dataSourceOptions(config.databaseUrl));
  // Preview mode builds the module graph without instantiating providers: nothing connects.
  const redis = {} as Redis;
  const metrics = {} as AppMetrics;
  const { api, admin } = await createApps({ config, dataSource, redis, metrics }, { logger: false, preview: true });
  const document = buildOpenApiDocument(admin, api, PRODUCT_VERSION);
  return `${JSON.stringify(document, null, 2)}\n`;
}

export async function validateOpenApi(json: string): Promise<string[]> {
  const validator = new Validator();
  const result = await validator.validate(JSON.parse(json) as Record<string, unknown>);
  if (result.valid) return [];
  const errors = result.errors ?? 'invalid';
  return typeof errors === 'string' ? [errors] : errors.map((error) => `${error.instancePath} ${error.message ?? ''}`);
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const json = await generateOpenApiJson();
  const errors = await validateOpenApi(json);
  if (errors.length > 0) {
    process.stderr.write(`openapi: the generated document is not valid OpenAPI:\n${errors.join('\n')}\n`);
    return 1;
  }
  if (check) {
    let committed = '';
    try {
      committed = readFileSync(OPENAPI_FILE, 'utf8');
    } catch {
      // a missing file is stale
    }
    if (committed !== json) {
      process.stderr.write('openapi: openapi/openapi.json is stale; run "npm run openapi" and commit it\n');
      return 1;
    }
    process.stdout.write('openapi: openapi/openapi.json is current and valid\n');
    return 0;
  }
  mkdirSync(dirname(OPENAPI_FILE), { recursive: true });
  writeFileSync(OPENAPI_FILE, json);
  process.stdout.write(`openapi: wrote ${OPENAPI_FILE}\n`);
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`openapi: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
