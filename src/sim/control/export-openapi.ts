import { resolve } from 'node:path';
import { exportOpenApi, runOpenApiMain } from '../../app/openapi-file.js';
import { buildControlOpenApi } from './control-operations.js';

export const CONTROL_OPENAPI_FILE = resolve('openapi/sim-control.json');
/** The control API's own version; it changes when a route or schema does. */
export const CONTROL_API_VERSION = '1.0.0';

export function generateControlOpenApiJson(): string {
  return `${JSON.stringify(buildControlOpenApi(CONTROL_API_VERSION), null, 2)}\n`;
}

if (require.main === module) {
  runOpenApiMain(() =>
    exportOpenApi(CONTROL_OPENAPI_FILE, generateControlOpenApiJson(), {
      check: process.argv.includes('--check'),
      regenerate: 'npm run openapi',
    }),
  );
}
