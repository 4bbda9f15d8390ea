import 'reflect-metadata';
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { loadConfig, pkiMaterialFromSet } from '../config/config.js';
import { dataSourceOptions } from '../database/data-source.js';
import type { AppMetrics } from '../metrics/metrics.js';
import { createPkiSet } from '../pki/dev-pki.js';
import { exportOpenApi, runOpenApiMain, validateOpenApi } from './openapi-file.js';
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

export { validateOpenApi };

async function main(): Promise<number> {
  return exportOpenApi(OPENAPI_FILE, await generateOpenApiJson(), {
    check: process.argv.includes('--check'),
    regenerate: 'npm run openapi',
  });
}

if (require.main === module) runOpenApiMain(main);
