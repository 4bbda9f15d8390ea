import { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import type { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import { SimulatedWorld as World, type PairedOwner } from '../../src/sim/world/simulated-world.js';
import { TEST_VIN, createTestPki, startTestSystem, type TestPki, type TestSystem } from './harness.js';

export type { PairedOwner };

/**
 * The mocked Device OEM backend with the test PKI's identities (any free port): it verifies the
 * server's notifications with the pinned KTS key and calls the server at `vehicleOemBaseUrl`.
 */
export function deviceOemBackendFor(
  pki: TestPki,
  vehicleOemBaseUrl: string | (() => string) = 'https://127.0.0.1:9',
): DeviceOemBackend {
  return DeviceOemBackend.fromPki(pki.set, { vehicleOemBaseUrl, port: 0 });
}

/**
 * The simulated world of `src/sim/world` joined to a test system: `start(system)` joins a running
 * system whose notifications go nowhere; `startWithSystem()` starts the backend first and the
 * system with `PARTNER_NOTIFICATION_URLS` pointing at it, so the backend verifies the server's
 * notifications and applies them to its phones.
 */
export class SimulatedWorld extends World {
  readonly #holder: { system?: TestSystem };
  #ownsSystem = false;

  private constructor(pki: TestPki, holder: { system?: TestSystem }) {
    const system = (): TestSystem => {
      if (!holder.system) throw new Error('the world has no system yet');
      return holder.system;
    };
    super({
      pki: pki.set,
      serverApiUrl: () => system().apiUrl,
      serverAdminUrl: () => system().adminUrl,
      operatorToken: (scopes) => system().operatorToken(scopes),
    });
    this.#holder = holder;
  }

  /** Joins a running system; its notifications to the Device OEM go to the harness's dead port. */
  static async start(system: TestSystem): Promise<SimulatedWorld> {
    const world = new SimulatedWorld(system.pki, { system });
    await world.listen();
    return world;
  }

  /**
   * Starts the Device OEM backend, then the api and worker with notifications addressed to it;
   * `close()` stops the system too.
   */
  static async startWithSystem(options: { env?: Record<string, string> } = {}): Promise<SimulatedWorld> {
    const pki = await createTestPki();
    const holder: { system?: TestSystem } = {};
    const world = new SimulatedWorld(pki, holder);
    const { deviceOemPort } = await world.listen();
    holder.system = await startTestSystem({
      pki,
      worker: true,
      env: { PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${deviceOemPort}`, ...options.env },
    });
    world.#ownsSystem = true;
    return world;
  }

  get system(): TestSystem {
    if (!this.#holder.system) throw new Error('the world has no system yet');
    return this.#holder.system;
  }

  /** Provisions car `n` (VIN `TEST_VIN(n)`) with the server and pins the trust it returns. */
  async provisionCar(n: number): Promise<SimulatedVehicle> {
    return (await this.provisionVehicle(TEST_VIN(n))).car;
  }

  override async close(): Promise<void> {
    // The worker first, so that nothing is sent to endpoints already closed.
    if (this.#ownsSystem) await this.#holder.system?.stop();
    await super.close();
  }
}
