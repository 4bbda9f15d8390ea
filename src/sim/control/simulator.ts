import { issueOperatorToken } from '../../common/auth/operator-token.js';
import type { OperatorScope } from '../../common/auth/operator-scopes.js';
import { decodeEntitlements, rightsList, type Entitlements } from '../../protocol/entitlements.js';
import type { TransactionCode } from '../../protocol/transaction.js';
import type { PartnerKey } from '../device-oem/device-oem-backend.js';
import type { SimulatedDevice } from '../device/simulated-device.js';
import type { ReaderLocation } from '../vehicle/vehicle-events.js';
import { eventually } from '../world/http-json.js';
import { SealedStateFile } from '../world/sealed-state-file.js';
import { SimulatedWorld, type WorldCar, type WorldSnapshot } from '../world/simulated-world.js';
import type { SimConfig } from './sim-config.js';

/** What the state file holds: the world and the names given to phones. */
interface SimulatorState {
  format: 1;
  world: WorldSnapshot;
  deviceNames: Record<string, string>;
}

/** A control call that cannot be done as asked; `status` is its HTTP status. */
export class ControlError extends Error {
  override readonly name = 'ControlError';

  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** The reader each action is done at (§4.1). */
const READER_OF: Readonly<Record<TransactionCode, ReaderLocation>> = {
  unlock: 'door',
  lock: 'door',
  trunk: 'trunk',
  'engine-start': 'console',
};

const EVENT_LOG_PAGE = 100;

function entitlementsView(entitlements: Entitlements): Record<string, unknown> {
  const { rights, ...limits } = entitlements;
  return { rights: rightsList(rights), ...limits };
}

/**
 * The simulator process's model: the simulated world (cars, phones, the Device OEM backend)
 * against a running server, saved to a sealed state file after every change and restored from it
 * at start. The control API is a thin layer over its methods.
 */
export class Simulator {
  readonly world: SimulatedWorld;
  readonly #file: SealedStateFile<SimulatorState>;
  readonly #names = new Map<string, string>();
  readonly #pairingTimeoutMs: number;
  #ports: { telematicsPort: number; deviceOemPort: number } | undefined;

  private constructor(config: SimConfig) {
    this.#file = SealedStateFile.open<SimulatorState>(config.stateFile);
    this.#pairingTimeoutMs = config.pairingTimeoutMs;
    this.world = new SimulatedWorld({
      pki: config.pki,
      serverApiUrl: config.serverApiUrl,
      serverAdminUrl: config.serverAdminUrl,
      operatorToken: operatorTokens(config),
      host: config.host,
      telematicsPort: config.telematicsPort,
      telematicsUrl: config.telematicsUrl,
      deviceOemPort: config.deviceOemPort,
      onChange: () => this.#saveQuietly(),
    });
  }

  /** Restores the saved world (if any), then opens the telematics endpoint and the Device OEM backend. */
  static async start(config: SimConfig): Promise<Simulator> {
    const simulator = new Simulator(config);
    const saved = simulator.#file.load();
    if (saved) {
      if (saved.format !== 1) throw new RangeError(`${config.stateFile} has an unknown format`);
      simulator.world.restoreSnapshot(saved.world);
      for (const [deviceId, name] of Object.entries(saved.deviceNames)) simulator.#names.set(deviceId, name);
    }
    simulator.#ports = await simulator.world.listen();
    return simulator;
  }

  get ports(): { telematicsPort: number; deviceOemPort: number } {
    if (!this.#ports) throw new Error('the simulator is not listening');
    return this.#ports;
  }

  get stateFile(): string {
    return this.#file.path;
  }

  /** Writes the whole state, sealed (temporary file, then rename). */
  save(): void {
    this.#file.save({
      format: 1,
      world: this.world.toSnapshot(),
      deviceNames: Object.fromEntries(this.#names),
    });
  }

  #saveQuietly(): void {
    try {
      this.save();
    } catch (error) {
      process.stderr.write(`sim: the state could not be saved: ${error instanceof Error ? error.message : 'error'}\n`);
    }
  }

  async close(): Promise<void> {
    await this.world.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Cars
  // ---------------------------------------------------------------------------------------------

  async provisionCar(vin: string): Promise<Record<string, unknown>> {
    if (this.world.car(vin)) throw new ControlError(409, `the car ${vin} is already provisioned here`);
    const entry = await this.world.provisionVehicle(vin);
    this.save();
    return this.carView(entry);
  }

  cars(): Record<string, unknown>[] {
    return this.world.cars().map((entry) => this.carView(entry));
  }

  car(vin: string, limit = EVENT_LOG_PAGE): Record<string, unknown> {
    const entry = this.#car(vin);
    const events = entry.car.events.entries();
    return {
      ...this.carView(entry),
      eventCount: entry.car.events.total,
      events: events.slice(Math.max(0, events.length - limit)),
      pendingReports: entry.car.pendingReports.length,
    };
  }

  setCarOnline(vin: string, online: boolean): Record<string, unknown> {
    const entry = this.#car(vin);
    this.world.setOnline(entry.car, online);
    this.save();
    return this.carView(entry);
  }

  /**
   * Pairing mode at the car (§3.1). Without `sessionId` the operator starts a session on the
   * server (the car receives its verifier over telematics) and the answer carries the password
   * for the owner; with one, it waits until the car holds that session's verifier.
   */
  async pairingMode(vin: string, sessionId?: string): Promise<Record<string, unknown>> {
    const entry = this.#car(vin);
    if (!this.world.isOnline(entry.car)) throw new ControlError(409, `the car ${vin} is offline`);
    const session = sessionId === undefined ? await this.world.startOwnerPairing(entry.car) : undefined;
    const wanted = session?.sessionId ?? sessionId;
    await eventually(
      () => entry.car.pairingMode.pairingSessionId,
      (id) => id === wanted,
      { timeoutMs: this.#pairingTimeoutMs },
    );
    this.save();
    return {
      vin,
      sessionId: wanted,
      ...(session ? { password: session.password } : {}),
      pairingMode: entry.car.pairingMode,
    };
  }

  carView({ vin, vehicleId, car }: WorldCar): Record<string, unknown> {
    return {
      vin,
      vehicleId,
      vehicleIdentifier: car.vehicleIdentifierHex,
      online: this.world.isOnline(car),
      keyListVersion: car.keyListVersion,
      lastSeq: car.telematics?.lastSeq ?? 0,
      pairingMode: car.pairingMode,
      ecu: car.ecuState,
      keys: car.endpoints().map((endpoint) => ({
        keyId: endpoint.keyId,
        role: endpoint.role,
        state: endpoint.state,
        entitlements: entitlementsView(endpoint.entitlements),
        hasKpersistent: endpoint.hasKpersistent,
        pairedLocally: endpoint.pairedLocally,
        ...(endpoint.lastUsedAt === undefined ? {} : { lastUsedAt: new Date(endpoint.lastUsedAt).toISOString() }),
      })),
    };
  }

  #car(vin: string): WorldCar {
    const entry = this.world.car(vin);
    if (!entry) throw new ControlError(404, `no car ${vin} in the simulator`);
    return entry;
  }

  // ---------------------------------------------------------------------------------------------
  // Phones
  // ---------------------------------------------------------------------------------------------

  createDevice(options: { name?: string; model?: string }): Record<string, unknown> {
    const phone = this.world.device(options.model);
    if (options.name !== undefined) this.#names.set(phone.deviceId, options.name);
    this.save();
    return this.deviceView(phone);
  }

  devices(): Record<string, unknown>[] {
    return this.world.devices().map((phone) => this.deviceView(phone));
  }

  device(deviceId: string): Record<string, unknown> {
    const phone = this.#device(deviceId);
    return { ...this.deviceView(phone), keyUpdates: phone.keyUpdates.slice(-EVENT_LOG_PAGE) };
  }

  async setDeviceOnline(deviceId: string, online: boolean): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    try {
      await this.world.setDeviceOnline(phone, online);
    } finally {
      this.save();
    }
    return this.deviceView(phone);
  }

  /** Owner pairing at the car (§3.2–3.4) after the operator started a session; resolves once the key is active. */
  async pair(
    deviceId: string,
    request: { vin: string; password: string; sessionId?: string },
  ): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    const entry = this.#car(request.vin);
    if (!this.world.isOnline(entry.car)) throw new ControlError(409, `the car ${request.vin} is offline`);
    try {
      const paired = await this.world.pairAtCar(entry.car, phone, request.password, {
        ...(request.sessionId === undefined ? {} : { sessionId: request.sessionId }),
        timeoutMs: this.#pairingTimeoutMs,
      });
      return { keyId: paired.keyId, vin: request.vin, deviceId, state: await this.world.keyState(paired.keyId) };
    } finally {
      this.save();
    }
  }

  /** The phone at one of the car's readers (§4): the car's decision. */
  async tap(
    deviceId: string,
    request: { vin: string; action: TransactionCode; mode?: 'fast' | 'standard'; reader?: ReaderLocation },
  ): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    const entry = this.#car(request.vin);
    if (request.mode === 'standard') {
      for (const key of phone.secureElement.keys()) {
        if (key.vehicleIdentifier === entry.car.vehicleIdentifierHex && key.hasKpersistent) {
          phone.secureElement.forgetKpersistent(key.keyId);
        }
      }
    }
    const reader = request.reader ?? READER_OF[request.action];
    try {
      const outcome = await phone.tap(entry.car, reader, request.action);
      return {
        allowed: outcome.result === 'granted',
        result: outcome.result,
        reason: outcome.reason,
        transaction: outcome.transaction,
        reader,
        action: request.action,
        ...(outcome.keyId ? { keyId: outcome.keyId } : {}),
        durationMicros: outcome.durationMicros,
        wallMicros: Math.round(outcome.wallMicros),
        ecu: entry.car.ecuState,
      };
    } finally {
      this.save();
    }
  }

  /**
   * Sharing through the Device OEM's invitation relay (§7): the owner's phone invites, the
   * friend's phone accepts, the owner attests, the friend registers.
   */
  async share(
    deviceId: string,
    request: { keyId: string; friendDeviceId: string; profile: string; pin?: string; validitySeconds?: number },
  ): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    const friend = this.#device(request.friendDeviceId);
    if (friend === phone) throw new ControlError(409, 'a phone cannot share a key with itself');
    const key = this.#walletKey(phone, request.keyId);
    const entry = this.world.car(key.vehicleIdentifier);
    if (!entry) throw new ControlError(409, `the key ${request.keyId} is for a car this simulator does not hold`);
    try {
      const friendKeyId = await this.world.shareByInvitation(
        entry.car,
        { keyId: key.keyId, phone },
        friend,
        request.profile,
        {
          ...(request.pin === undefined ? {} : { pin: request.pin }),
          ...(request.validitySeconds === undefined ? {} : { validityMs: request.validitySeconds * 1000 }),
        },
      );
      return {
        friendKeyId,
        friendDeviceId: friend.deviceId,
        vin: entry.vin,
        profile: request.profile,
        state: await this.world.keyState(friendKeyId),
      };
    } finally {
      this.save();
    }
  }

  /** The user deletes a key in the Wallet: termination attestation to the server (§5). */
  async deleteKey(deviceId: string, keyId: string): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    this.#walletKey(phone, keyId);
    try {
      const key = await phone.deleteKey(keyId);
      // Offline, the SE has disabled the key and holds the signed proof until the phone is back.
      return { keyId, deviceId, state: key === 'queued' ? 'deleted-offline' : key.state };
    } finally {
      this.save();
    }
  }

  /** Lost mode: the Device OEM suspends (or, found, resumes) every key of the phone (§5). */
  async lostMode(deviceId: string, enabled: boolean): Promise<Record<string, unknown>> {
    const phone = this.#device(deviceId);
    let keys: PartnerKey[];
    try {
      keys = enabled
        ? await this.world.deviceOem.enterLostMode(phone.deviceId)
        : await this.world.deviceOem.exitLostMode(phone.deviceId);
    } finally {
      this.save();
    }
    return { deviceId, lostMode: enabled, keys };
  }

  deviceView(phone: SimulatedDevice): Record<string, unknown> {
    const name = this.#names.get(phone.deviceId);
    const held = new Map(phone.secureElement.keys().map((key) => [key.keyId, key]));
    return {
      deviceId: phone.deviceId,
      ...(name === undefined ? {} : { name }),
      model: phone.model,
      online: this.world.deviceOem.isDeviceReachable(phone.deviceId),
      keys: phone.wallet.map((key) => {
        const entitlements = held.get(key.keyId)?.entitlements;
        return {
          keyId: key.keyId,
          vehicleIdentifier: key.vehicleIdentifier,
          ...(this.world.car(key.vehicleIdentifier) ? { vin: this.world.car(key.vehicleIdentifier)!.vin } : {}),
          role: key.role,
          state: key.keyState,
          wallet: key.state,
          ...(key.serverState === undefined ? {} : { serverState: key.serverState }),
          ...(entitlements ? { entitlements: entitlementsView(decodeEntitlements(entitlements)) } : {}),
        };
      }),
    };
  }

  #device(deviceId: string): SimulatedDevice {
    const phone = this.world.deviceById(deviceId);
    if (!phone) throw new ControlError(404, `no device ${deviceId} in the simulator`);
    return phone;
  }

  #walletKey(phone: SimulatedDevice, keyId: string) {
    const key = phone.walletKey(keyId);
    if (!key) throw new ControlError(404, `the device ${phone.deviceId} holds no key ${keyId}`);
    return key;
  }
}

/** A fresh short-lived token per call, minted with the dev PKI's key, or the configured one. */
function operatorTokens(config: SimConfig): (scopes: OperatorScope[]) => Promise<string> {
  const fixed = config.operatorToken;
  if (fixed) return () => Promise.resolve(fixed);
  const key = config.operatorTokenKeyPem;
  if (!key) throw new RangeError('no operator token and no operator-token key');
  return (scopes) => issueOperatorToken(key, { subject: 'simulator', scopes, ttlSeconds: 300 });
}
