import 'reflect-metadata';
import { runProcess } from './app/run-process.js';
import { startWorker } from './app/worker-process.js';

runProcess('worker', async (config) => {
  const worker = await startWorker(config);
  process.stderr.write(
    `worker: outbox relay, vehicle-command and notification workers and sweeper running; metrics on http://${config.workerMetrics.host}:${worker.metricsPort}/metrics\n`,
  );
  return worker;
});
