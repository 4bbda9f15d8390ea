import { ConfigError, loadConfig, type AppConfig } from '../config/config.js';
import { DependencyError } from './dependencies.js';

/**
 * Shared start-up of every process: validate configuration, start, and on SIGINT/SIGTERM shut
 * down gracefully. Known start-up problems print one clear line and exit 1 — never a hang,
 * never a stack trace for a configuration mistake.
 */
export function runProcess(name: string, start: (config: AppConfig) => Promise<{ close(): Promise<void> }>): void {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${name}: configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  start(config).then(
    (running) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`${name}: ${signal} received, shutting down\n`);
        const force = setTimeout(() => process.exit(1), 15_000);
        force.unref();
        running.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    },
    (error: unknown) => {
      if (error instanceof DependencyError || error instanceof ConfigError) {
        process.stderr.write(`${name}: cannot start: ${error.message}\n`);
      } else {
        process.stderr.write(
          `${name}: cannot start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
      }
      process.exit(1);
    },
  );
}
