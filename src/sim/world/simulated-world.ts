import { generateKeyPairSync } from 'node:crypto';
import type { OperatorScope } from '../../common/auth/operator-scopes.js';
import type { PkiSet } from '../../pki/dev-pki.js';
import { DeviceOemBackend, type DeviceOemSnapshot } from '../device-oem/device-oem-backend.js';
import { SimulatedDevice, type DeviceSnapshot } from '../device/simulated-device.js';
import { InstanceCertificateAuthority } from '../secure-element/instance-certificate-authority.js';
import { SimulatedVehicle, type VehicleSnapshot } from '../vehicle/simulated-vehicle.js';
import { TelematicsEndpoint } from '../vehicle/telematics-endpoint.js';
import { eventually, httpJson } from './http-json.js';

/** The part of the PKI the simulated world holds: TLS identities, trust anchors, the phones' Instance CA. */
export type WorldPki = Pick<
  PkiSet,
  | 'telematicsGatewayCert'
  | 'telematicsGatewayKey'
  | 'deviceOemServerCert'
  | 'deviceOemServerKey'
  | 'deviceOemClientCert'
  | 'deviceOemClientKey'
  | 'vehicleOemRootCert'
  | 'ktsPublicKey'
  | 'instanceCaCert'
  | 'instanceCaKey'
  | 'deviceOemCaCrossCert'
>;

export interface SimulatedWorldOptions {
  pki: WorldPki;
  /** The server's mTLS listener (partner API, cars' reports); a function is read at each call. */
  serverApiUrl: string | (() => string);
  /** The server's admin listener (vehicle provisioning, owner pairing). */
  serverAdminUrl: string | (() => string);
  /** An operator token with these scopes, for the admin calls. */
  operatorToken: (scopes: OperatorScope[]) => Promise<string>;
  /** Address both HTTPS endpoints listen on; default 127.0.0.1. */
  host?: string;
  /** Port of the cars' telematics endpoint; default 0 (any free port). */
  telematicsPort?: number;
  /** Base URL the server reaches the telematics endpoint at; default `https://127.0.0.1:<port>`. */
  telematicsUrl?: string;
  /** Port of the Device OEM backend's notification endpoint; default 0 (any free port). */
  deviceOemPort?: number;
  /** Called after the server changed something in the world (a telematics command, a notification). */
  onChange?: () => void;
}

/** A car the world provisioned with the server. */
export interface WorldCar {
  readonly vin: string;
  /** The server's id of the vehicle (`POST /v1/vehicles` → `id`). */
  readonly vehicleId: string;
  readonly car: SimulatedVehicle;
}

export interface PairingSession {
  sessionId: string;
  password: string;
}

/** An owner key paired over NFC, registered through the Device OEM, activated by the car's ADD_KEY ack. */
export interface PairedOwner {
  readonly keyId: string;
  readonly phone: SimulatedDevice;
}

/**
 * The whole world, private keys included (cars' keys, sealed SE states with their storage keys):
 * its keeper must seal it before it leaves memory.
 */
export interface WorldSnapshot {
  format: 1;
  cars: Array<{ vin: string; vehicleId: string; online: boolean; vehicle: VehicleSnapshot }>;
  devices: DeviceSnapshot[];
  deviceOem: DeviceOemSnapshot;
}

interface ProvisionedVehicle {
  id: string;
  vehicleIdentifier: string;
  certificatePem: string;
  trust: { vehicleOemRootCertificatePem: string; telematicsPublicKeyPem: string; ktsPublicKeyPem: string };
}

interface AccessProfileView {
  name: string;
  entitlementsTlv: string;
}

function read(value: string | (() => string)): string {
  return typeof value === 'string' ? value : value();
}

/**
 * The world outside the server: simulated cars behind one real HTTPS telematics endpoint
 * (certificate chained to the Vehicle OEM root, as the server requires), the mocked Device OEM
 * backend with the allow-listed client certificate, and phones whose SE holds the Instance CA.
 * Cars are provisioned through `POST /v1/vehicles` and pin what it returns; they reach the
 * server only over the network. Tests and the simulator process share it.
 */
export class SimulatedWorld {
  readonly deviceOem: DeviceOemBackend;
  protected readonly options: SimulatedWorldOptions;
  readonly #cars = new Map<string, WorldCar>();
  readonly #byIdentifier = new Map<string, WorldCar>();
  readonly #offline = new Set<string>();
  readonly #devices = new Map<string, SimulatedDevice>();
  readonly #endpoint: TelematicsEndpoint;
  #telematicsPort = 0;

  constructor(options: SimulatedWorldOptions) {
    this.options = options;
    const pki = options.pki;
    this.#endpoint = new TelematicsEndpoint({
      certPem: pki.telematicsGatewayCert,
      keyPem: pki.telematicsGatewayKey,
      host: options.host,
      port: options.telematicsPort ?? 0,
      unitFor: (id) => this.#find(id)?.car.telematics,
      isOnline: (id) => !this.#offline.has(id),
      onCommand: () => this.options.onChange?.(),
    });
    this.deviceOem = DeviceOemBackend.fromPki(pki, {
      vehicleOemBaseUrl: () => read(this.options.serverApiUrl),
      host: options.host,
      port: options.deviceOemPort ?? 0,
      onNotification: () => this.options.onChange?.(),
    });
  }

  /** Opens the telematics endpoint and the Device OEM backend; returns their ports. */
  async listen(): Promise<{ telematicsPort: number; deviceOemPort: number }> {
    this.#telematicsPort = await this.#endpoint.listen();
    const deviceOemPort = await this.deviceOem.listen();
    return { telematicsPort: this.#telematicsPort, deviceOemPort };
  }

  get telematicsUrl(): string {
    return this.options.telematicsUrl ?? `https://127.0.0.1:${this.#telematicsPort}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Cars
  // ---------------------------------------------------------------------------------------------

  /** Provisions a car with the server (its own key, the server's identifier and certificate) and pins the trust it returns. */
  async provisionVehicle(vin: string): Promise<WorldCar> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const res = await this.adminCall<ProvisionedVehicle>('POST', '/v1/vehicles', ['vehicles:write'], {
      vin,
      telematicsUrl: `${this.telematicsUrl}/vehicles/${vin}/commands`,
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    if (res.status !== 201) throw new WorldCallError('provisioning', res.status, res.body);
    const car = new SimulatedVehicle({
      vehicleIdentifier: Buffer.from(res.body.vehicleIdentifier, 'hex'),
      vehiclePrivateKey: privateKey,
      vehicleCertificatePem: res.body.certificatePem,
      vehicleOemRootPem: res.body.trust.vehicleOemRootCertificatePem,
      ktsPublicKey: res.body.trust.ktsPublicKeyPem,
    });
    car.attachTelematics({ telematicsPublicKey: res.body.trust.telematicsPublicKeyPem });
    return this.addCar(vin, res.body.id, car);
  }

  /** Takes a car into the world (provisioned now or restored) and connects its outbox to the server. */
  protected addCar(vin: string, vehicleId: string, car: SimulatedVehicle): WorldCar {
    car.attachServer({ baseUrl: () => read(this.options.serverApiUrl) });
    const entry: WorldCar = { vin, vehicleId, car };
    this.#cars.set(vin, entry);
    this.#byIdentifier.set(car.vehicleIdentifierHex, entry);
    return entry;
  }

  /** A car by VIN or 16-hex vehicle identifier. */
  car(vinOrIdentifier: string): WorldCar | undefined {
    return this.#find(vinOrIdentifier);
  }

  cars(): WorldCar[] {
    return [...this.#cars.values()];
  }

  /** The VIN a car was provisioned under. */
  vinOf(car: SimulatedVehicle): string {
    const entry = this.#byIdentifier.get(car.vehicleIdentifierHex);
    if (!entry || entry.car !== car) throw new Error('unknown car');
    return entry.vin;
  }

  /**
   * Out of coverage: the telematics endpoint drops the server's connections for this car and the
   * car's own reports wait; back online, they go out.
   */
  setOnline(car: SimulatedVehicle, online: boolean): void {
    car.setOnline(online);
    const vin = this.vinOf(car);
    for (const id of [vin, car.vehicleIdentifierHex]) {
      if (online) this.#offline.delete(id);
      else this.#offline.add(id);
    }
  }

  isOnline(car: SimulatedVehicle): boolean {
    return !this.#offline.has(car.vehicleIdentifierHex);
  }

  #find(id: string): WorldCar | undefined {
    return this.#cars.get(id) ?? this.#byIdentifier.get(id);
  }

  // ---------------------------------------------------------------------------------------------
  // Phones
  // ---------------------------------------------------------------------------------------------

  /** The Instance CA the phones' SEs hold for this automaker. */
  instanceCa(): InstanceCertificateAuthority {
    const pki = this.options.pki;
    return new InstanceCertificateAuthority({
      certificatePem: pki.instanceCaCert,
      privateKeyPem: pki.instanceCaKey,
      deviceOemCrossCertificatePem: pki.deviceOemCaCrossCert,
    });
  }

  /** A phone of the Device OEM, its SE holding the Instance CA for this automaker, signed in with the backend. */
  device(model = 'Phone 17'): SimulatedDevice {
    return this.addDevice(new SimulatedDevice({ instanceCa: this.instanceCa(), deviceOem: this.deviceOem, model }));
  }

  /** Takes a phone into the world (created now or restored) and signs it in with the backend. */
  protected addDevice(phone: SimulatedDevice): SimulatedDevice {
    this.#devices.set(phone.deviceId, phone);
    this.deviceOem.enrollDevice(phone);
    return phone;
  }

  deviceById(deviceId: string): SimulatedDevice | undefined {
    return this.#devices.get(deviceId);
  }

  devices(): SimulatedDevice[] {
    return [...this.#devices.values()];
  }

  /** The phone in airplane mode (or in a thief's pocket): its maker's backend holds the pushes for it. */
  setDeviceOnline(phone: SimulatedDevice, online: boolean): Promise<void> {
    this.deviceOem.setDeviceReachable(phone.deviceId, online);
    return phone.setOnline(online);
  }

  // ---------------------------------------------------------------------------------------------
  // Owner pairing and sharing
  // ---------------------------------------------------------------------------------------------

  /** The operator starts owner pairing (§3.1): the server sends the verifier to the car over telematics. */
  async startOwnerPairing(car: SimulatedVehicle): Promise<PairingSession> {
    const res = await this.adminCall<PairingSession>(
      'POST',
      `/v1/vehicles/${this.vinOf(car)}/owner-pairing`,
      ['vehicles:write'],
      {},
    );
    if (res.status !== 201) throw new WorldCallError('owner pairing', res.status, res.body);
    return res.body;
  }

  /**
   * The phone pairs at the car (§3.2–3.4) once the car holds the session's verifier (any session
   * when `sessionId` is absent), registers the key through the Device OEM backend, and resolves
   * when the car acknowledged ADD_KEY. The car must be online.
   */
  async pairAtCar(
    car: SimulatedVehicle,
    phone: SimulatedDevice,
    password: string,
    options: { sessionId?: string; timeoutMs?: number } = {},
  ): Promise<PairedOwner> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    await eventually(
      () => car.pairingMode.pairingSessionId,
      (id) => (options.sessionId === undefined ? id !== undefined : id === options.sessionId),
      { timeoutMs },
    );
    phone.enterPairingPassword(password);
    const paired = await phone.pairWith(car);
    if (paired.result !== 'paired' || !paired.keyId) throw new PairingFailure(paired.reason);
    await phone.registerKey(paired.keyId);
    await this.waitForState(paired.keyId, 'active', timeoutMs);
    await eventually(
      () => car.endpoint(paired.keyId!)?.state,
      (state) => state === 'active',
      { timeoutMs },
    );
    return { keyId: paired.keyId, phone };
  }

  /** Owner pairing end to end (§3): the operator starts it, then the phone pairs at the car. */
  async pairOwner(car: SimulatedVehicle, phone: SimulatedDevice = this.device()): Promise<PairedOwner> {
    const session = await this.startOwnerPairing(car);
    return this.pairAtCar(car, phone, session.password, { sessionId: session.sessionId });
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
    const request = friendPhone.createFriendKey({
      vehicleIdentifier: car.vehicleIdentifierHex,
      vehiclePublicKey: car.publicPoint,
      entitlements: await this.accessProfile(car, profile),
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
    const entitlements = profiles.body.items?.find((item) => item.name === profile)?.entitlementsTlv;
    if (!entitlements) throw new UnknownAccessProfile(profile);
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

  // ---------------------------------------------------------------------------------------------
  // Persistence
  // ---------------------------------------------------------------------------------------------

  toSnapshot(): WorldSnapshot {
    return {
      format: 1,
      cars: this.cars().map(({ vin, vehicleId, car }) => ({
        vin,
        vehicleId,
        online: this.isOnline(car),
        vehicle: car.toSnapshot(),
      })),
      devices: this.devices().map((phone) => phone.toSnapshot()),
      deviceOem: this.deviceOem.toSnapshot(),
    };
  }

  /** Fills an empty world with a snapshot's cars, phones and Device OEM records. */
  restoreSnapshot(snapshot: WorldSnapshot): void {
    if (snapshot.format !== 1) throw new RangeError(`unknown world snapshot format ${String(snapshot.format)}`);
    if (this.#cars.size > 0 || this.#devices.size > 0) throw new RangeError('the world is not empty');
    for (const saved of snapshot.cars) {
      const { car } = this.addCar(saved.vin, saved.vehicleId, SimulatedVehicle.fromSnapshot(saved.vehicle));
      this.setOnline(car, saved.online);
    }
    for (const saved of snapshot.devices) {
      this.addDevice(SimulatedDevice.fromSnapshot(saved, { instanceCa: this.instanceCa(), deviceOem: this.deviceOem }));
    }
    this.deviceOem.restoreSnapshot(snapshot.deviceOem);
  }

  async close(): Promise<void> {
    await this.#endpoint.close();
    await this.deviceOem.close();
  }

  protected async adminCall<T>(method: string, path: string, scopes: OperatorScope[], body?: unknown) {
    const token = await this.options.operatorToken(scopes);
    return httpJson<T>(method, `${read(this.options.serverAdminUrl)}${path}`, { token, body });
  }
}

/** The server refused an admin call the world made; `problem` is its answer. */
export class WorldCallError extends Error {
  override readonly name = 'WorldCallError';

  constructor(
    readonly operation: string,
    readonly status: number,
    readonly problem: unknown,
  ) {
    const detail = (problem as { detail?: unknown } | null)?.detail;
    super(`${operation} failed: the server answered ${status}${typeof detail === 'string' ? `: ${detail}` : ''}`);
  }
}

/** Owner pairing at the car did not pair; `reason` is the car's (§3). */
export class PairingFailure extends Error {
  override readonly name = 'PairingFailure';

  constructor(readonly reason: string) {
    super(`pairing failed: ${reason}`);
  }
}

export class UnknownAccessProfile extends Error {
  override readonly name = 'UnknownAccessProfile';

  constructor(readonly profile: string) {
    super(`no access profile ${profile}`);
  }
}
