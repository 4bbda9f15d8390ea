import 'reflect-metadata';
import { runProcess } from './app/run-process.js';
import { createApiServer } from './app/server.js';

runProcess('api', async (config) => {
  const server = await createApiServer(config);
  process.stderr.write(
    `api: mTLS listener on https://${config.api.host}:${server.apiPort}, admin on http://${config.admin.host}:${server.adminPort} (console at /docs)\n`,
  );
  return server;
});
