import { generateKeyPairSync } from 'node:crypto';
import { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import { SimulatedDevice } from '../../src/sim/device/simulated-device.js';
import { InstanceCertificateAuthority } from '../../src/sim/secure-element/instance-certificate-authority.js';
import { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import { TelematicsEndpoint } from '../../src/sim/vehicle/telematics-endpoint.js';
import {
  TEST_VIN,
  adminRequest,
  createTestPki,
  eventually,
  startTestSystem,
  type TestPki,
  type TestSystem,
} from './harness.js';

interface ProvisionedVehicle {
  vehicleIdentifier: string;
  certificatePem: string;
  trust: { vehicleOemRootCertificatePem: string; telematicsPublicKeyPem: string; ktsPublicKeyPem: string };
}

interface PairingSession {
  sessionId: string;
  password: string;
}

interface AccessProfileView {
  name: string;
  entitlementsTlv: string;
}

/** An owner key paired over NFC, registered through the Device OEM, activated by the car's ADD_KEY ack. */
export interface PairedOwner {
  readonly keyId: string;
  readonly phone: SimulatedDevice;
}

/**
 * The world outside the server, for end-to-end tests: simulated cars behind one real HTTPS
 * telematics endpoint (certificate chained to the Vehicle OEM root, as the server requires),
 * the mocked Device OEM backend with the allow-listed client certificate, and phones whose SE
 * holds the test PKI's Instance CA. Cars are provisioned through `POST /v1/vehicles` and pin
 * what it returns; they reach the server only over the network.
 *
 * `start(system)` joins a running system whose notifications go nowhere; `startWithSystem()`
 * starts the backend first and the system with `PARTNER_NOTIFICATION_URLS` pointing at it, so
 * the backend verifies the server's notifications and applies them to its phones.
 */
export class SimulatedWorld {
  readonly deviceOem: DeviceOemBackend;
  readonly #pki: TestPki;
  readonly #cars = new Map<string, SimulatedVehicle>();
  readonly #offline = new Set<string>();
  readonly #endpoint: TelematicsEndpoint;
  #system: TestSystem | undefined;
  #ownsSystem = false;
  #port = 0;

  private constructor(pki: TestPki) {
    this.#pki = pki;
    const set = pki.set;
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
      vehicleOemBaseUrl: () => this.system.apiUrl,
      ktsPublicKeyPem: set.ktsPublicKey,
      port: 0,
    });
  }

  /** Joins a running system; its notifications to the Device OEM go to the harness's dead port. */
  static async start(system: TestSystem): Promise<SimulatedWorld> {
    const world = new SimulatedWorld(system.pki);
    world.#system = system;
    world.#port = await world.#endpoint.listen();
    await world.deviceOem.listen();
    return world;
  }

  /**
   * Starts the Device OEM backend, then the api and worker with notifications addressed to it;
   * `close()` stops the system too.
   */
  static async startWithSystem(options: { env?: Record<string, string> } = {}): Promise<SimulatedWorld> {
    const pki = await createTestPki();
    const world = new SimulatedWorld(pki);
    world.#port = await world.#endpoint.listen();
    const backendPort = await world.deviceOem.listen();
    world.#system = await startTestSystem({
      pki,
      worker: true,
      env: { PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${backendPort}`, ...options.env },
    });
    world.#ownsSystem = true;
    return world;
  }

  get system(): TestSystem {
    if (!this.#system) throw new Error('the world has no system yet');
    return this.#system;
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
    car.attachServer({ baseUrl: () => this.system.apiUrl });
    this.#cars.set(vin, car);
    this.#cars.set(car.vehicleIdentifierHex, car);
    return car;
  }

  /** The VIN a car was provisioned under. */
  vinOf(car: SimulatedVehicle): string {
    for (const [id, known] of this.#cars) if (known === car && id.length === 17) return id;
    throw new Error('unknown car');
  }

  /**
   * Out of coverage: the telematics endpoint drops the server's connections for this car and the
   * car's own reports wait; back online, they go out.
   */
  setOnline(car: SimulatedVehicle, online: boolean): void {
    car.setOnline(online);
    for (const [id, known] of this.#cars) {
      if (known !== car) continue;
      if (online) this.#offline.delete(id);
      else this.#offline.add(id);
    }
  }

  /** A phone of the Device OEM, its SE holding the Instance CA for this automaker, signed in with the backend. */
  device(model = 'Phone 17'): SimulatedDevice {
    const set = this.#pki.set;
    const phone = new SimulatedDevice({
      instanceCa: new InstanceCertificateAuthority({
        certificatePem: set.instanceCaCert,
        privateKeyPem: set.instanceCaKey,
        deviceOemCrossCertificatePem: set.deviceOemCaCrossCert,
      }),
      deviceOem: this.deviceOem,
      model,
    });
    this.deviceOem.enrollDevice(phone);
    return phone;
  }

  /** The phone in airplane mode (or in a thief's pocket): its maker's backend holds the pushes for it. */
  setDeviceOnline(phone: SimulatedDevice, online: boolean): void {
    this.deviceOem.setDeviceReachable(phone.deviceId, online);
  }

  /**
   * Owner pairing end to end (§3): the operator starts it, the verifier reaches the car over
   * telematics, the phone pairs over NFC and registers through the Device OEM backend, and the
   * key is active once the car acknowledged ADD_KEY. The car must be online.
   */
  async pairOwner(car: SimulatedVehicle, phone: SimulatedDevice = this.device()): Promise<PairedOwner> {
    const token = await this.system.operatorToken(['vehicles:write']);
    const res = await adminRequest<PairingSession>(
      this.system,
      'POST',
      `/v1/vehicles/${this.vinOf(car)}/owner-pairing`,
      {
        token,
        body: {},
      },
    );
    if (res.status !== 201) throw new Error(`pairing did not start: ${res.status} ${res.text}`);
    await eventually(
      () => car.pairingMode.pairingSessionId,
      (id) => id === res.body.sessionId,
    );
    phone.enterPairingPassword(res.body.password);
    const paired = await phone.pairWith(car);
    if (paired.result !== 'paired' || !paired.keyId) throw new Error(`pairing failed: ${paired.reason}`);
    await phone.registerKey(paired.keyId);
    await this.waitForState(paired.keyId, 'active');
    await eventually(
      () => car.endpoint(paired.keyId!)?.state,
      (state) => state === 'active',
    );
    return { keyId: paired.keyId, phone };
  }

  /**
   * Sharing (§7): the friend's phone creates a key for the car, the owner's SE attests it with the
   * named access profile, the friend registers it through the Device OEM backend; resolves when
   * the car acknowledged ADD_KEY.
   */
  async shareKey(
    car: SimulatedVehicle,
    owner: PairedOwner,
    friendPhone: SimulatedDevice,
    profile = 'UNLOCK_AND_DRIVE',
  ): Promise<string> {
    const profiles = await this.deviceOem.call<{ items: AccessProfileView[] }>(
      'GET',
      `/partner/v1/vehicles/${car.vehicleIdentifierHex}/access-profiles`,
    );
    const entitlements = profiles.body.items.find((item) => item.name === profile)?.entitlementsTlv;
    if (!entitlements) throw new Error(`no access profile ${profile}`);
    const request = friendPhone.createFriendKey({
      vehicleIdentifier: car.vehicleIdentifierHex,
      vehiclePublicKey: car.publicPoint,
      entitlements: Buffer.from(entitlements, 'hex'),
    });
    const attestation = owner.phone.shareKey(owner.keyId, request);
    await friendPhone.registerFriendKey(request.keyId, attestation);
    await this.waitForState(request.keyId, 'active');
    return request.keyId;
  }

  /** The entitlements TLV of one of the car's access profiles, as the server lists them to partners. */
  async accessProfile(car: SimulatedVehicle, profile: string): Promise<Buffer> {
    const profiles = await this.deviceOem.call<{ items: AccessProfileView[] }>(
      'GET',
      `/partner/v1/vehicles/${car.vehicleIdentifierHex}/access-profiles`,
    );
    const entitlements = profiles.body.items.find((item) => item.name === profile)?.entitlementsTlv;
    if (!entitlements) throw new Error(`no access profile ${profile}`);
    return Buffer.from(entitlements, 'hex');
  }

  /**
   * Sharing through the invitation relay (§7 steps 1–4): the owner invites (profile from the
   * server's list, optional PIN), the friend accepts the link, the owner attests the friend's
   * key, the friend stores the attestation and registers. Resolves with the friend key id once
   * the server returned the KTS receipt (the car may still be offline).
   */
  async shareByInvitation(
    car: SimulatedVehicle,
    owner: PairedOwner,
    friendPhone: SimulatedDevice,
    profile: string,
    options: { pin?: string; validityMs?: number } = {},
  ): Promise<string> {
    const link = owner.phone.createInvitation(owner.keyId, {
      profileName: profile,
      entitlements: await this.accessProfile(car, profile),
      ...options,
    });
    const request = friendPhone.acceptInvitation(link, options.pin);
    const attestation = owner.phone.attestFriendKey(owner.keyId, request);
    await friendPhone.registerFriendKey(request.keyId, attestation);
    return request.keyId;
  }

  /** The key's state as the Device OEM sees it on the server. */
  async keyState(keyId: string): Promise<string> {
    return (await this.deviceOem.getKey(keyId)).state;
  }

  async waitForState(keyId: string, state: string, timeoutMs = 10_000): Promise<void> {
    await eventually(
      () => this.keyState(keyId),
      (current) => current === state,
      { timeoutMs },
    );
  }

  async close(): Promise<void> {
    // The worker first, so that nothing is sent to endpoints already closed.
    if (this.#ownsSystem) await this.#system?.stop();
    await this.#endpoint.close();
    await this.deviceOem.close();
  }
}
