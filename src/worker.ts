import 'reflect-metadata';
import { runProcess } from './app/run-process.js';
import { startWorker } from './app/worker-process.js';

runProcess('worker', async (config) => {
  const worker = await startWorker(config);
  process.stderr.write('worker: outbox relay, vehicle-command worker and sweeper running\n');
  return worker;
});
