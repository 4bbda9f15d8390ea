import 'reflect-metadata';
import { ConfigError } from '../config/config.js';
import { createControlApi, listenControlApi } from './control/control-api.js';
import { loadSimConfig, type SimConfig } from './control/sim-config.js';
import { Simulator } from './control/simulator.js';
import { StateFileError } from './world/sealed-state-file.js';

/**
 * The simulator process: the mocked Device OEM backend (HTTPS mTLS), the cars' telematics
 * endpoint (HTTPS) and the control API (HTTP JSON), with the world kept in a sealed state file.
 */
async function main(): Promise<void> {
  let config: SimConfig;
  let simulator: Simulator;
  try {
    config = loadSimConfig();
    simulator = await Simulator.start(config);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StateFileError) {
      process.stderr.write(`sim: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const app = createControlApi(simulator);
  const controlPort = await listenControlApi(app, config.controlHost, config.controlPort);
  const { deviceOemPort, telematicsPort } = simulator.ports;
  process.stdout.write(
    `sim: Device OEM backend on https://${config.host}:${deviceOemPort}, telematics on https://${config.host}:${telematicsPort}` +
      ` (registered as ${config.telematicsUrl}), control API on http://${config.controlHost}:${controlPort};` +
      ` server ${config.serverApiUrl}; ${simulator.world.cars().length} cars and ${simulator.world.devices().length} devices from ${simulator.stateFile}\n`,
  );
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await app.close();
      simulator.save();
      await simulator.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`sim: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
