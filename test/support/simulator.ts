import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PKI_FILES, type PkiFileId } from '../../src/pki/pki-files.js';
import { createControlApi, listenControlApi } from '../../src/sim/control/control-api.js';
import { loadSimConfig } from '../../src/sim/control/sim-config.js';
import { Simulator } from '../../src/sim/control/simulator.js';
import { startTestSystem, type TestPki, type TestSystem } from './harness.js';

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The PKI's files in a fresh folder, laid out as `npm run pki:dev` writes them. */
export function writePkiDir(pki: TestPki): string {
  const dir = mkdtempSync(join(tmpdir(), 'sim-pki-'));
  for (const id of Object.keys(PKI_FILES) as PkiFileId[]) writeFileSync(join(dir, PKI_FILES[id]), pki.set[id]);
  return dir;
}

/**
 * A real system (api and worker) with the simulator's parts in this process: the control API on
 * a free port, the Device OEM backend the server notifies, the telematics endpoint the cars are
 * reached at, the world in a sealed state file. `start`/`stop` restart the simulator alone.
 */
export class SystemWithSimulator {
  simulator: Simulator | undefined;
  app: FastifyInstance | undefined;
  controlUrl = '';

  private constructor(
    readonly system: TestSystem,
    /** The simulator's environment (SIM_*). */
    readonly env: Record<string, string>,
    readonly pkiDir: string,
  ) {}

  static async start(pki: TestPki): Promise<SystemWithSimulator> {
    const [deviceOemPort, telematicsPort] = [await freePort(), await freePort()];
    const system = await startTestSystem({
      pki,
      worker: true,
      env: { PAIRING_SCRYPT_N: '1024', PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${deviceOemPort}` },
    });
    const pkiDir = writePkiDir(pki);
    const stateDir = mkdtempSync(join(tmpdir(), 'sim-state-'));
    const world = new SystemWithSimulator(
      system,
      {
        SIM_PKI_DIR: pkiDir,
        SIM_DEVICE_OEM_PORT: String(deviceOemPort),
        SIM_TELEMATICS_PORT: String(telematicsPort),
        SIM_TELEMATICS_URL: `https://127.0.0.1:${telematicsPort}`,
        SIM_SERVER_API_URL: system.apiUrl,
        SIM_SERVER_ADMIN_URL: system.adminUrl,
        SIM_STATE_FILE: join(stateDir, 'sim-state.json'),
      },
      pkiDir,
    );
    await world.startSimulator();
    return world;
  }

  async startSimulator(): Promise<void> {
    this.simulator = await Simulator.start(loadSimConfig(this.env));
    this.app = createControlApi(this.simulator);
    this.controlUrl = `http://127.0.0.1:${await listenControlApi(this.app, '127.0.0.1', 0)}`;
  }

  async stopSimulator(): Promise<void> {
    await this.app?.close();
    await this.simulator?.close();
    this.app = undefined;
    this.simulator = undefined;
  }

  async stop(): Promise<void> {
    await this.system.worker?.close();
    await this.stopSimulator();
    await this.system.stop();
  }
}
