import { generateKeyPairSync } from 'node:crypto';
import { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import { SimulatedDevice } from '../../src/sim/device/simulated-device.js';
import { InstanceCertificateAuthority } from '../../src/sim/secure-element/instance-certificate-authority.js';
import { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import { TelematicsEndpoint } from '../../src/sim/vehicle/telematics-endpoint.js';
import { TEST_VIN, adminRequest, type TestSystem } from './harness.js';

interface ProvisionedVehicle {
  vehicleIdentifier: string;
  certificatePem: string;
  trust: { vehicleOemRootCertificatePem: string; telematicsPublicKeyPem: string; ktsPublicKeyPem: string };
}

/**
 * The world outside the server, for end-to-end tests: simulated cars behind one real HTTPS
 * telematics endpoint (certificate chained to the Vehicle OEM root, as the server requires),
 * the mocked Device OEM backend with the allow-listed client certificate, and phones whose SE
 * holds the test PKI's Instance CA. Cars are provisioned through `POST /v1/vehicles` and pin
 * what it returns; they reach the server only over the network.
 */
export class SimulatedWorld {
  readonly deviceOem: DeviceOemBackend;
  readonly #cars = new Map<string, SimulatedVehicle>();
  readonly #offline = new Set<string>();
  readonly #endpoint: TelematicsEndpoint;
  #port = 0;

  private constructor(readonly system: TestSystem) {
    const set = system.pki.set;
    this.#endpoint = new TelematicsEndpoint({
      certPem: set.telematicsGatewayCert,
      keyPem: set.telematicsGatewayKey,
      unitFor: (id) => this.#cars.get(id)?.telematics,
      isOnline: (id) => !this.#offline.has(id),
    });
    this.deviceOem = new DeviceOemBackend({
      serverCertPem: set.deviceOemServerCert,
      serverKeyPem: set.deviceOemServerKey,
      clientCertPem: set.deviceOemClientCert,
      clientKeyPem: set.deviceOemClientKey,
      vehicleOemRootPem: set.vehicleOemRootCert,
      vehicleOemBaseUrl: system.apiUrl,
      port: 0,
    });
  }

  static async start(system: TestSystem): Promise<SimulatedWorld> {
    const world = new SimulatedWorld(system);
    world.#port = await world.#endpoint.listen();
    await world.deviceOem.listen();
    return world;
  }

  /** Provisions car `n` with the server (its own key, the server's identifier and certificate) and pins the trust it returns. */
  async provisionCar(n: number): Promise<SimulatedVehicle> {
    const vin = TEST_VIN(n);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await this.system.operatorToken(['vehicles:write']);
    const res = await adminRequest<ProvisionedVehicle>(this.system, 'POST', '/v1/vehicles', {
      token,
      body: {
        vin,
        telematicsUrl: `https://127.0.0.1:${this.#port}/vehicles/${vin}/commands`,
        publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      },
    });
    if (res.status !== 201) throw new Error(`provisioning failed: ${res.status} ${res.text}`);
    const car = new SimulatedVehicle({
      vehicleIdentifier: Buffer.from(res.body.vehicleIdentifier, 'hex'),
      vehiclePrivateKey: privateKey,
      vehicleCertificatePem: res.body.certificatePem,
      vehicleOemRootPem: res.body.trust.vehicleOemRootCertificatePem,
      ktsPublicKey: res.body.trust.ktsPublicKeyPem,
    });
    car.attachTelematics({ telematicsPublicKey: res.body.trust.telematicsPublicKeyPem });
    this.#cars.set(vin, car);
    this.#cars.set(car.vehicleIdentifierHex, car);
    return car;
  }

  /** Out of coverage: the telematics endpoint drops the server's connections for this car. */
  setOnline(car: SimulatedVehicle, online: boolean): void {
    for (const [id, known] of this.#cars) {
      if (known !== car) continue;
      if (online) this.#offline.delete(id);
      else this.#offline.add(id);
    }
  }

  /** A phone of the Device OEM, its SE holding the Instance CA for this automaker. */
  device(model = 'Phone 17'): SimulatedDevice {
    const set = this.system.pki.set;
    return new SimulatedDevice({
      instanceCa: new InstanceCertificateAuthority({
        certificatePem: set.instanceCaCert,
        privateKeyPem: set.instanceCaKey,
        deviceOemCrossCertificatePem: set.deviceOemCaCrossCert,
      }),
      deviceOem: this.deviceOem,
      model,
    });
  }

  async close(): Promise<void> {
    await this.#endpoint.close();
    await this.deviceOem.close();
  }
}
