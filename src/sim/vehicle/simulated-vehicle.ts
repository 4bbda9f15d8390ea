import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { checkLength, toHex } from '../../protocol/bytes.js';
import { EphemeralKeyPair, P256KeyPair, P256PublicKey } from '../../protocol/crypto/p256.js';
import { READER_LOCATION } from '../../protocol/ecp.js';
import { ENTITLEMENT_PROFILES, type Entitlements } from '../../protocol/entitlements.js';
import { ProtocolError } from '../../protocol/errors.js';
import {
  DEFAULT_KEY_IDENTIFIER_PROFILE,
  VEHICLE_IDENTIFIER_LENGTH,
  type KeyIdentifierProfile,
} from '../../protocol/identifiers.js';
import { SW } from '../../protocol/apdu.js';
import type { PairingVerifier, TelematicsCommand } from '../../protocol/telematics-messages.js';
import {
  signReaderAuthentication,
  SUPPORTED_PROTOCOL_VERSIONS,
  TRANSACTION_ID_LENGTH,
} from '../../protocol/transaction.js';
import { EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import { PairingReader, type PairingCredentials } from './pairing-reader.js';
import { RandomPool } from './random-pool.js';
import { TelematicsRejection, TelematicsUnit } from './telematics-unit.js';
import { VehicleEventReporter, type VehicleReport } from './vehicle-event-reporter.js';
import { VehicleEcu, type EcuState } from './vehicle-ecu.js';
import {
  DEFAULT_EVENT_LOG_CAPACITY,
  VehicleEventLog,
  type CarKeyState,
  type PairingEvent,
  type ReaderLocation,
  type VehicleEvent,
} from './vehicle-events.js';
import {
  VehicleKeyList,
  type EndpointSummary,
  type EnrollEndpointRequest,
  type KeyListSnapshot,
} from './vehicle-key-list.js';
import { VehiclePairingMode, type PairingModeSnapshot, type PairingModeSummary } from './vehicle-pairing-mode.js';
import { VehicleReader, type ReaderContext } from './vehicle-reader.js';

export interface SimulatedVehicleOptions {
  /** 8 bytes issued by the server at provisioning; random when absent. */
  readonly vehicleIdentifier?: Uint8Array;
  /** The vehicle's long-term private key (e.g. provisioned by a test harness); generated when absent. */
  readonly vehiclePrivateKey?: KeyObject;
  /** Vehicle OEM root certificate (PEM): written to the device at pairing and verifies device chains (§2, §3.4). */
  readonly vehicleOemRootPem?: string;
  /** The vehicle certificate the server issued at provisioning (PEM), written to the device at pairing (§3.4). */
  readonly vehicleCertificatePem?: string;
  /** The KTS public key pinned at provisioning: its receipts activate a pending owner (§3.4). */
  readonly ktsPublicKey?: KeyObject | string;
  /** What a new owner may do (§6); default the OWNER profile. */
  readonly ownerEntitlements?: Entitlements;
  /** Key identifier function (§4.6); default `sha256-8`. */
  readonly keyIdentifierProfile?: KeyIdentifierProfile;
  /** Protocol versions the readers support (§4.2). */
  readonly supportedVersions?: readonly number[];
  /** 12-bit manufacturer code in the ECP TCI (§4.1). */
  readonly manufacturer?: number;
  /** Set the ECP "no authentication required" bit (express mode); default on. */
  readonly expressMode?: boolean;
  /** Unix milliseconds. */
  readonly clock?: () => number;
  /** Offset of the car's local time from UTC, for time-of-day entitlements (§6). */
  readonly utcOffsetMinutes?: number;
  /** Source of reader ephemerals; readers may precompute them while idle. */
  readonly ephemeralKeys?: () => EphemeralKeyPair;
  /** Source of 16-byte transaction ids (tests inject determinism). */
  readonly transactionIds?: () => Buffer;
  readonly eventLogCapacity?: number;
}

export const DEFAULT_MANUFACTURER_CODE = 0x0d4;

/**
 * Everything a car holds, its private key and Kpersistents included: only for persistence sealed
 * by its keeper (`toSnapshot` / `fromSnapshot`).
 */
export interface VehicleSnapshot {
  /** 8 bytes, hex. */
  vehicleIdentifier: string;
  /** PKCS#8 PEM. */
  vehiclePrivateKeyPem: string;
  vehicleCertificatePem?: string;
  vehicleOemRootPem?: string;
  ktsPublicKeyPem?: string;
  telematics?: { telematicsPublicKeyPem: string; lastSeq: number; keyListVersion: number };
  keyList: KeyListSnapshot;
  pairingMode: PairingModeSnapshot;
  events: { entries: VehicleEvent[]; total: number };
  ecu: { state: EcuState; actuations: number };
  /** FRIEND_ENROLLED reports the server has not answered yet. */
  pendingReports: VehicleReport[];
}

/**
 * An NFC-emulated car (§1): vehicle key pair (the private key never leaves this object), allow-
 * and deny-list of endpoints with Kpersistent, a forward-only key-list version, readers at the
 * door, console and trunk, an ECU, and an event log of every decision. The key list is what the
 * telematics unit (§8) updates.
 */
export class SimulatedVehicle {
  readonly vehicleIdentifier: Buffer;
  readonly vehicleOemRootPem: string | undefined;
  /** The vehicle certificate the server issued (public), written to phones at pairing. */
  readonly vehicleCertificatePem: string | undefined;
  readonly events: VehicleEventLog;
  readonly keyIdentifierProfile: KeyIdentifierProfile;
  readonly #vehicleKey: P256KeyPair;
  readonly #keyList: VehicleKeyList;
  readonly #ecu = new VehicleEcu();
  readonly #readers: Readonly<Record<ReaderLocation, VehicleReader>>;
  readonly #pairingMode = new VehiclePairingMode();
  readonly #pairingReader: PairingReader;
  readonly #clock: () => number;
  readonly #ktsPublicKeyPem: string | undefined;
  #telematics: TelematicsUnit | undefined;
  #reporter: VehicleEventReporter | undefined;
  /** Reports made before a reporter was attached (friend enrollments, relayed revocations). */
  readonly #unreported: VehicleReport[] = [];

  constructor(options: SimulatedVehicleOptions = {}) {
    const vehicleIdentifier = options.vehicleIdentifier ?? randomBytes(VEHICLE_IDENTIFIER_LENGTH);
    checkLength(vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
    this.vehicleIdentifier = Buffer.from(vehicleIdentifier);
    this.vehicleOemRootPem = options.vehicleOemRootPem;
    this.vehicleCertificatePem = options.vehicleCertificatePem;
    this.keyIdentifierProfile = options.keyIdentifierProfile ?? DEFAULT_KEY_IDENTIFIER_PROFILE;
    this.#vehicleKey = options.vehiclePrivateKey
      ? P256KeyPair.fromPrivateKey(options.vehiclePrivateKey)
      : P256KeyPair.generate();
    const clock = options.clock ?? Date.now;
    this.#clock = clock;
    this.#ktsPublicKeyPem = options.ktsPublicKey
      ? asPublicKey(options.ktsPublicKey).export({ type: 'spki', format: 'pem' }).toString()
      : undefined;
    this.events = new VehicleEventLog(options.eventLogCapacity ?? DEFAULT_EVENT_LOG_CAPACITY);
    this.#keyList = new VehicleKeyList(this.keyIdentifierProfile, this.events, clock);
    const vehicleKey = this.#vehicleKey;
    const context: ReaderContext = {
      vehicleIdentifier: this.vehicleIdentifier,
      vehiclePublicPoint: vehicleKey.publicPoint,
      manufacturer: options.manufacturer ?? DEFAULT_MANUFACTURER_CODE,
      expressMode: options.expressMode ?? true,
      versions: [...(options.supportedVersions ?? SUPPORTED_PROTOCOL_VERSIONS)],
      profile: this.keyIdentifierProfile,
      keyList: this.#keyList,
      log: this.events,
      ecu: this.#ecu,
      clock,
      utcOffsetMinutes: options.utcOffsetMinutes ?? 0,
      ephemeralKeys: options.ephemeralKeys ?? EphemeralKeyPair.generate,
      transactionIds:
        options.transactionIds ??
        (
          (pool) => () =>
            pool.take(TRANSACTION_ID_LENGTH)
        )(new RandomPool()),
      signReader: (signatureContext) => signReaderAuthentication(vehicleKey, signatureContext),
      onFriendEnrolled: (keyId) => this.#report('FRIEND_ENROLLED', keyId),
      onRelayedRevocation: (keyIds) => keyIds.forEach((keyId) => this.#report('KEY_REVOKED_BY_RELAY', keyId)),
      ...(options.ktsPublicKey ? { ktsPublicKey: P256PublicKey.fromKeyObject(asPublicKey(options.ktsPublicKey)) } : {}),
    };
    const locations = Object.keys(READER_LOCATION) as ReaderLocation[];
    this.#readers = Object.fromEntries(
      locations.map((location) => [location, new VehicleReader(location, context)]),
    ) as Record<ReaderLocation, VehicleReader>;
    const credentials = pairingCredentials(options.vehicleCertificatePem, options.vehicleOemRootPem);
    this.#pairingReader = new PairingReader({
      vehicleIdentifier: this.vehicleIdentifier,
      manufacturer: context.manufacturer,
      versions: context.versions,
      pairingMode: this.#pairingMode,
      keyList: this.#keyList,
      log: this.events,
      clock,
      credentials: () => credentials,
      ownerEntitlements: options.ownerEntitlements ?? ENTITLEMENT_PROFILES.OWNER,
    });
  }

  get vehicleIdentifierHex(): string {
    return toHex(this.vehicleIdentifier);
  }

  /** The vehicle (reader long-term) public key; phones store it at pairing to verify AUTH1. */
  get publicKey(): P256PublicKey {
    return this.#vehicleKey.publicKey;
  }

  get publicPoint(): Buffer {
    return Buffer.from(this.#vehicleKey.publicPoint);
  }

  /** SPKI PEM of the vehicle key, as the server's vehicle provisioning expects. */
  get publicKeyPem(): string {
    return this.#vehicleKey.publicKey.keyObject.export({ type: 'spki', format: 'pem' }).toString();
  }

  reader(location: ReaderLocation): VehicleReader {
    return this.#readers[location];
  }

  /** The reader that runs owner pairing (§3), on the console. */
  get pairingReader(): PairingReader {
    return this.#pairingReader;
  }

  /** Pairing mode: which session's verifier the car holds, failed attempts, lock-out (§3.1). */
  get pairingMode(): PairingModeSummary {
    return this.#pairingMode.summary;
  }

  /**
   * Installs the SPAKE2+ verifier of a pairing session (PAIRING_VERIFIER, §3.1 step 4): replaces
   * any previous one and resets the failure counter. Malformed → ProtocolError.
   */
  installPairingVerifier(verifier: PairingVerifier, source: 'telematics' | 'local' = 'local'): void {
    const installed = this.#pairingMode.install(verifier);
    const event: PairingEvent = {
      kind: 'pairing',
      at: this.#clock(),
      result: 'verifier-installed',
      reason: 'none',
      sw: SW.OK,
      pairingSessionId: installed.pairingSessionId,
      failedAttempts: 0,
      detail: `from ${source}`,
    };
    this.events.append(event);
  }

  get ecuState(): EcuState {
    return this.#ecu.state;
  }

  /** Granted actions so far. */
  get actuations(): number {
    return this.#ecu.actuations;
  }

  stopEngine(): void {
    this.#ecu.stopEngine();
  }

  // ---------------------------------------------------------------------------------------------
  // Key list (pairing, sharing and telematics land here)
  // ---------------------------------------------------------------------------------------------

  /** Adds (or updates) an endpoint on the allow-list; returns its key id. */
  enrollEndpoint(request: EnrollEndpointRequest): string {
    return this.#keyList.enroll(request, 'local');
  }

  /** Suspend, resume or revoke; suspension and revocation delete Kpersistent at once (§4.4). */
  setEndpointState(keyId: string, state: CarKeyState): void {
    this.#keyList.setState(keyId.toLowerCase(), state, 'local');
  }

  revokeEndpoint(keyId: string): void {
    this.#keyList.deny(keyId.toLowerCase(), 'local');
  }

  /**
   * The owner deletes a key in the car's screen (§5): revoked here at once, Kpersistent gone,
   * and reported to the server (KEY_DELETED_AT_CAR), which revokes it and tells the key's phone.
   */
  deleteAtHmi(keyId: string): void {
    this.revokeEndpoint(keyId);
    this.#report('KEY_DELETED_AT_CAR', keyId.toLowerCase());
  }

  setEndpointEntitlements(keyId: string, entitlements: Entitlements): void {
    this.#keyList.setEntitlements(keyId.toLowerCase(), entitlements, 'local');
  }

  /** Deletes the stored Kpersistent of one endpoint (the next tap is standard). */
  forgetKpersistent(keyId: string): void {
    const entry = this.#keyList.get(keyId.toLowerCase());
    if (entry) this.#keyList.forgetKpersistent(entry, 'local');
  }

  endpoint(keyId: string): EndpointSummary | undefined {
    return this.#keyList.summaries().find((summary) => summary.keyId === keyId.toLowerCase());
  }

  endpoints(): EndpointSummary[] {
    return this.#keyList.summaries();
  }

  isDenied(keyId: string): boolean {
    return this.#keyList.isDenied(keyId.toLowerCase());
  }

  get keyListVersion(): number {
    return this.#keyList.version;
  }

  /** Sorted `keyId‖state` lines of every endpoint the car holds, terminated ones included. */
  keyListLines(): string[] {
    return this.#keyList.lines();
  }

  /** What the telematics unit calls for each verified, in-order command (§8). */
  applyTelematicsCommand(command: TelematicsCommand): void {
    if (command.cmd === 'PAIRING_VERIFIER') {
      if (!command.verifier) throw new TelematicsRejection('PAIRING_VERIFIER needs verifier');
      try {
        this.installPairingVerifier(command.verifier, 'telematics');
      } catch (error) {
        if (error instanceof ProtocolError)
          throw new TelematicsRejection(`the verifier is malformed: ${error.message}`);
        throw error;
      }
    }
    this.#keyList.applyTelematicsCommand(command);
  }

  // ---------------------------------------------------------------------------------------------
  // Telematics (§8)
  // ---------------------------------------------------------------------------------------------

  /** Creates the car's telematics unit, wired to this key list and signing with the vehicle key. */
  attachTelematics(options: { telematicsPublicKey: KeyObject | string }): TelematicsUnit {
    this.#telematics = new TelematicsUnit({
      vehicleIdentifier: this.vehicleIdentifierHex,
      vehiclePrivateKey: this.#vehicleKey.privateKey,
      telematicsPublicKey: options.telematicsPublicKey,
      apply: (command) => this.applyTelematicsCommand(command),
      keyListDigest: () => this.#keyList.digest(),
      keyListVersion: () => this.keyListVersion,
    });
    return this.#telematics;
  }

  get telematics(): TelematicsUnit | undefined {
    return this.#telematics;
  }

  // ---------------------------------------------------------------------------------------------
  // Reports to the server (§7 step 5)
  // ---------------------------------------------------------------------------------------------

  /**
   * Connects the car's outbox to the server's mTLS listener: it authenticates with the vehicle
   * certificate and key from provisioning and trusts only the Vehicle OEM root.
   */
  attachServer(options: { baseUrl: string | (() => string) }): VehicleEventReporter {
    if (!this.vehicleCertificatePem || !this.vehicleOemRootPem) {
      throw new RangeError('the car needs its vehicle certificate and the Vehicle OEM root to reach the server');
    }
    this.#reporter = new VehicleEventReporter({
      baseUrl: options.baseUrl,
      certificatePem: this.vehicleCertificatePem,
      privateKeyPem: this.#vehicleKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      vehicleOemRootPem: this.vehicleOemRootPem,
    });
    for (const report of this.#unreported.splice(0)) this.#reporter.report(report);
    return this.#reporter;
  }

  get reporter(): VehicleEventReporter | undefined {
    return this.#reporter;
  }

  /** Reports not yet answered by the server. */
  get pendingReports(): readonly VehicleReport[] {
    return this.#reporter ? this.#reporter.pending : [...this.#unreported];
  }

  /** Coverage of the car's own uplink: reports queue while offline and go out when back. */
  setOnline(online: boolean): void {
    this.#reporter?.setOnline(online);
  }

  // ---------------------------------------------------------------------------------------------
  // Persistence
  // ---------------------------------------------------------------------------------------------

  /** The car's whole state, private key included: the caller must seal it before it leaves memory. */
  toSnapshot(): VehicleSnapshot {
    const telematics = this.#telematics;
    return {
      vehicleIdentifier: this.vehicleIdentifierHex,
      vehiclePrivateKeyPem: this.#vehicleKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      ...(this.vehicleCertificatePem ? { vehicleCertificatePem: this.vehicleCertificatePem } : {}),
      ...(this.vehicleOemRootPem ? { vehicleOemRootPem: this.vehicleOemRootPem } : {}),
      ...(this.#ktsPublicKeyPem ? { ktsPublicKeyPem: this.#ktsPublicKeyPem } : {}),
      ...(telematics
        ? { telematics: { telematicsPublicKeyPem: telematics.telematicsPublicKeyPem, ...telematics.toSnapshot() } }
        : {}),
      keyList: this.#keyList.toSnapshot(),
      pairingMode: this.#pairingMode.toSnapshot(),
      events: this.events.toSnapshot(),
      ecu: this.#ecu.toSnapshot(),
      pendingReports: [...this.pendingReports],
    };
  }

  /**
   * A car as `toSnapshot` left it, with its telematics unit attached; its outbox connects to the
   * server with `attachServer`, which sends the reports still pending.
   */
  static fromSnapshot(snapshot: VehicleSnapshot, options: SimulatedVehicleOptions = {}): SimulatedVehicle {
    const car = new SimulatedVehicle({
      ...options,
      vehicleIdentifier: Buffer.from(snapshot.vehicleIdentifier, 'hex'),
      vehiclePrivateKey: createPrivateKey(snapshot.vehiclePrivateKeyPem),
      ...(snapshot.vehicleCertificatePem ? { vehicleCertificatePem: snapshot.vehicleCertificatePem } : {}),
      ...(snapshot.vehicleOemRootPem ? { vehicleOemRootPem: snapshot.vehicleOemRootPem } : {}),
      ...(snapshot.ktsPublicKeyPem ? { ktsPublicKey: snapshot.ktsPublicKeyPem } : {}),
    });
    car.#keyList.restoreSnapshot(snapshot.keyList);
    car.#pairingMode.restoreSnapshot(snapshot.pairingMode);
    car.events.restoreSnapshot(snapshot.events);
    car.#ecu.restoreSnapshot(snapshot.ecu);
    car.#unreported.push(...snapshot.pendingReports);
    if (snapshot.telematics) {
      const { telematicsPublicKeyPem, ...position } = snapshot.telematics;
      car.attachTelematics({ telematicsPublicKey: telematicsPublicKeyPem }).restoreSnapshot(position);
    }
    return car;
  }

  #report(type: VehicleReport['type'], keyId: string): void {
    const report: VehicleReport = { type, keyId, occurredAt: new Date(this.#clock()).toISOString() };
    if (this.#reporter) this.#reporter.report(report);
    else this.#unreported.push(report);
  }
}

function asPublicKey(key: KeyObject | string): KeyObject {
  return typeof key === 'string' ? createPublicKey(key) : key;
}

/** Pairing needs both the vehicle certificate and the root (§3.4); a car without them cannot pair. */
function pairingCredentials(certificatePem?: string, rootPem?: string): PairingCredentials | undefined {
  if (!certificatePem || !rootPem) return undefined;
  return {
    vehicleCertificate: Buffer.from(new X509Certificate(certificatePem).raw),
    vehicleOemRoot: Buffer.from(new X509Certificate(rootPem).raw),
    chainVerifier: new EndpointChainVerifier(rootPem),
  };
}
