import { randomBytes } from 'node:crypto';
import { encodeResponseApdu, parseCommandApdu, SW, type CommandApdu } from '../../protocol/apdu.js';
import { asBuffer, checkInteger, checkLength, fromHex, toHex } from '../../protocol/bytes.js';
import { KEY_ROLE_CODES, type KeyRole } from '../../protocol/certificate-extensions.js';
import { EphemeralKeyPair, P256KeyPair, P256PublicKey } from '../../protocol/crypto/p256.js';
import { decodeCarTci, parseEcpFrame } from '../../protocol/ecp.js';
import { decodeEntitlements, encodeEntitlements, hasRight, type Entitlements } from '../../protocol/entitlements.js';
import { ProtocolError } from '../../protocol/errors.js';
import { signFriendAttestation as signAttestation } from '../../protocol/friend-attestation.js';
import {
  DEFAULT_KEY_IDENTIFIER_PROFILE,
  keyIdentifier as computeKeyIdentifier,
  splitReaderIdentifier,
  VEHICLE_IDENTIFIER_LENGTH,
  type KeyIdentifierProfile,
} from '../../protocol/identifiers.js';
import { CONFIDENTIAL_MAILBOX_SIZE, PRIVATE_MAILBOX_SIZE, processMailboxExchange } from '../../protocol/mailbox.js';
import type { EndpointChainDer, PairingState } from '../../protocol/pairing.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import {
  checkSelectedVersion,
  CLA_ISO,
  CLA_PROPRIETARY,
  CLA_SECURED,
  CRYPTOGRAM_LENGTH,
  deriveFastKeys,
  fastContext,
  deriveStandardKeys,
  encodeAuth0Response,
  encodeAuth1Response,
  encodeSelectResponse,
  EXCHANGE_HEADER,
  FRAMEWORK_APPLET_AID,
  INS,
  isFastTransactionCode,
  parseAuth0Command,
  parseAuth1Command,
  parseControlFlowCommand,
  parseSelectCommand,
  signDeviceAuthentication,
  SUPPORTED_PROTOCOL_VERSIONS,
  TRANSACTION_APPLET_AID,
  transactionContext,
  verifyReaderAuthentication,
  type Auth0Command,
  type ControlFlowReason,
  type FastKeys,
  type TransactionCode,
  type TransactionContext,
} from '../../protocol/transaction.js';
import type { ContactlessCard } from '../nfc/contactless.js';
import { ApduRefusal, statusWordFor } from './apdu-refusal.js';
import {
  FrameworkApplet,
  type DevicePairingOutcome,
  type FrameworkPhase,
  type PairedKeyRequest,
  type PairingSecretsDerivation,
} from './framework-applet.js';
import type { InstanceCertificateAuthority } from './instance-certificate-authority.js';
import { sealState, unsealState } from './sealed-state.js';
import { SecureElementError } from './secure-element-error.js';
import { terminationAttestationMessage, type TerminationAttestation } from '../../protocol/termination-attestation.js';

/** Device-side key states (§5); `pending` and `terminating` exist only on the server and car. */
export type EndpointKeyState = 'active' | 'suspended' | 'terminated';

/** Where the applet is in the §4 command sequence. */
export type SessionPhase = 'idle' | 'selected' | 'authenticating' | 'secured';

/** What the phone asks the user when the reader did not set the express bit (§4.1). */
export interface UserConfirmationRequest {
  readonly keyId: string;
  readonly vehicleIdentifier: string;
  readonly transactionCode: TransactionCode;
  /** Reader location nibble from the ECP frame's TCI, when the frame carried a car TCI. */
  readonly readerLocation?: number;
}

export interface SoftwareSecureElementOptions {
  /** Key identifier function (§4.6); default `sha256-8`. */
  readonly keyIdentifierProfile?: KeyIdentifierProfile;
  /** Versions listed in the SELECT response, highest first (§4.2). */
  readonly supportedVersions?: readonly number[];
  /** Express mode (default on): readers with the "no authentication required" bit need no user action. */
  readonly expressMode?: boolean;
  /** Simulated user confirmation; default: nobody confirms. */
  readonly userConfirmation?: (request: UserConfirmationRequest) => boolean;
  /** Unix milliseconds; injected by tests. */
  readonly clock?: () => number;
  /** Source of transaction ephemerals; a precomputed pool is legitimate (SEs fill it while idle). */
  readonly ephemeralKeys?: () => EphemeralKeyPair;
  /** Endpoint key generation, injectable for vectors and tests only; the key never leaves the SE. */
  readonly generateEndpointKeyPair?: () => P256KeyPair;
  /** The Device OEM's Instance CA for the automaker (§2, §3.4); without it the framework applet cannot pair. */
  readonly instanceCa?: InstanceCertificateAuthority;
  /** password → (w0, w1) for SPAKE2+ (§3.1); scrypt by default, injectable so benchmarks can time it apart. */
  readonly derivePairingSecrets?: PairingSecretsDerivation;
}

export interface CreateKeyRequest {
  /** 8 bytes, issued by the server (§4.6). */
  readonly vehicleIdentifier: Uint8Array;
  /** Vehicle (reader long-term) public key, 65-byte point; verifies AUTH1 (§4.3). */
  readonly vehiclePublicKey: Uint8Array;
  /** As encoded TLV (§6) or decoded; informational on the device (the car enforces). */
  readonly entitlements?: Uint8Array | Entitlements;
  readonly role?: KeyRole;
  readonly privateMailboxSize?: number;
  readonly confidentialMailboxSize?: number;
}

export interface CreatedKey {
  readonly keyIdentifier: Buffer;
  /** Hex of the key identifier: the server's `keyId`. */
  readonly keyId: string;
  readonly endpointPublicKey: Buffer;
}

export interface EndpointKeySummary extends CreatedKey {
  readonly vehicleIdentifier: string;
  readonly vehiclePublicKey: Buffer;
  readonly state: EndpointKeyState;
  readonly counter: bigint;
  readonly hasKpersistent: boolean;
  readonly role?: KeyRole;
  readonly entitlements?: Buffer;
  readonly createdAtMs: number;
}

/** What the owner's SE signs for a friend (§7 step 3); vehicle and owner key come from the owner key. */
export interface FriendAttestationRequest {
  /** The friend's endpoint public key, 65-byte point, from its KeySigningRequest. */
  readonly endpointPublicKey: Uint8Array;
  /** Entitlements TLV (§6) of the profile shared. */
  readonly entitlements: Uint8Array;
  /** Whole seconds. */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What the car told the device with CONTROL FLOW (the phone's "Unlocked" banner). */
export interface DeviceTransactionOutcome {
  readonly at: number;
  readonly keyId?: string;
  readonly vehicleIdentifier: string;
  readonly transaction: 'standard' | 'fast' | 'none';
  readonly success: boolean;
  readonly reason: ControlFlowReason;
}

export { SW_NO_PRECISE_DIAGNOSIS } from './apdu-refusal.js';
/** At most this many CONTROL FLOW outcomes are kept. */
export const OUTCOME_HISTORY_LIMIT = 64;

const EMPTY = Buffer.alloc(0);
const KNOWN_CLASSES: readonly number[] = [CLA_ISO, CLA_PROPRIETARY, CLA_SECURED];
/** The CLA each instruction of the transaction applet uses (§4.2). */
const CLASS_OF_INSTRUCTION: ReadonlyMap<number, number> = new Map([
  [INS.SELECT, CLA_ISO],
  [INS.AUTH0, CLA_PROPRIETARY],
  [INS.AUTH1, CLA_PROPRIETARY],
  [INS.EXCHANGE, CLA_SECURED],
  [INS.CONTROL_FLOW, CLA_PROPRIETARY],
]);

interface EndpointKeyRecord {
  readonly keyIdentifier: Buffer;
  readonly keyId: string;
  /** Dropped at termination: the deleted key can sign nothing more. */
  signingKey: P256KeyPair | undefined;
  readonly endpointPublicKey: Buffer;
  readonly vehicleIdentifier: Buffer;
  readonly vehiclePublicKey: P256PublicKey;
  /** One per car: every reader of a car shares the vehicle key and the ECU's store (§1, §4.4). */
  kpersistent: Buffer | undefined;
  privateMailbox: Buffer;
  confidentialMailbox: Buffer;
  state: EndpointKeyState;
  /** Transactions answered with this key (AUTH0); bound into the termination attestation. */
  counter: bigint;
  readonly role: KeyRole | undefined;
  entitlements: Buffer | undefined;
  readonly createdAtMs: number;
  termination: TerminationAttestation | undefined;
  /** Owner pairing (§3.4): `[endpoint, Instance CA, Device OEM CA cross]`, DER. */
  readonly certificateChain: EndpointChainDer | undefined;
  /** The Vehicle OEM root the car wrote at pairing, DER. */
  readonly vehicleOemRoot: Buffer | undefined;
}

interface TransactionSession {
  /** Undefined: a decoy session for a reader this device holds no usable key for. */
  readonly key: EndpointKeyRecord | undefined;
  readonly vehicleIdentifier: Buffer;
  readonly auth0: Auth0Command;
  readonly context: TransactionContext;
  readonly ephemeral: EphemeralKeyPair;
  readonly fastKeys: FastKeys | undefined;
  channel: SecureChannel | undefined;
  kind: 'standard' | 'fast' | 'none';
  /** Private-mailbox copy of an atomic batch in progress (`8C 01`), committed after the last request. */
  staged: Buffer | undefined;
}

interface FieldInfo {
  readonly noAuthRequired: boolean;
  readonly readerLocation: number | undefined;
}

// Decoy sessions still verify a signature, against a key nobody holds, so that a probing reader
// cannot tell "no key for this car" from "wrong signature" by timing.
let decoyVerifier: P256PublicKey | undefined;
function decoyVehicleKey(): P256PublicKey {
  return (decoyVerifier ??= P256KeyPair.generate().publicKey);
}

/** JSON shape inside the sealed blob (format 1). */
interface PersistedKey {
  keyIdentifier: string;
  privateScalar?: string;
  endpointPublicKey: string;
  vehicleIdentifier: string;
  vehiclePublicKey: string;
  kpersistent?: string;
  privateMailbox: string;
  confidentialMailbox: string;
  state: EndpointKeyState;
  counter: string;
  role?: KeyRole;
  entitlements?: string;
  createdAtMs: number;
  termination?: { counter: string; unixMs: number; signature: string };
  certificateChain?: string[];
  vehicleOemRoot?: string;
}

interface PersistedState {
  format: 1;
  keyIdentifierProfile: KeyIdentifierProfile;
  keys: PersistedKey[];
}

const KEY_STATES: readonly EndpointKeyState[] = ['active', 'suspended', 'terminated'];

/**
 * Software secure element with the digital-key transaction applet (PROTOCOL.md §4, device side):
 * one applet instance hosting every car key of the device. Endpoint private keys are generated
 * inside and live only in true-private records; they leave the object only sealed under the
 * device key (`exportState`). APDUs never throw: every failure is a status word and ends the
 * transaction in progress.
 */
export class SoftwareSecureElement implements ContactlessCard {
  /** Express mode (§4.1): answer readers with the "no authentication required" bit without asking. */
  expressMode: boolean;

  readonly #profile: KeyIdentifierProfile;
  readonly #versions: readonly number[];
  readonly #selectResponse: Buffer;
  readonly #userConfirmation: (request: UserConfirmationRequest) => boolean;
  readonly #clock: () => number;
  readonly #ephemeralKeys: () => EphemeralKeyPair;
  readonly #generateEndpointKeyPair: () => P256KeyPair;
  readonly #keys = new Map<string, EndpointKeyRecord>();
  readonly #outcomes: DeviceTransactionOutcome[] = [];
  readonly #framework: FrameworkApplet;
  /** The applet the last successful SELECT chose. */
  #selected: 'transaction' | 'framework' | undefined;
  #phase: SessionPhase = 'idle';
  #session: TransactionSession | undefined;
  #field: FieldInfo | undefined;

  constructor(options: SoftwareSecureElementOptions = {}) {
    this.#profile = options.keyIdentifierProfile ?? DEFAULT_KEY_IDENTIFIER_PROFILE;
    this.#versions = [...(options.supportedVersions ?? SUPPORTED_PROTOCOL_VERSIONS)];
    this.#selectResponse = encodeResponseApdu(encodeSelectResponse(this.#versions), SW.OK);
    this.expressMode = options.expressMode ?? true;
    this.#userConfirmation = options.userConfirmation ?? (() => false);
    this.#clock = options.clock ?? Date.now;
    this.#ephemeralKeys = options.ephemeralKeys ?? EphemeralKeyPair.generate;
    this.#generateEndpointKeyPair = options.generateEndpointKeyPair ?? P256KeyPair.generate;
    this.#framework = new FrameworkApplet({
      appletVersions: this.#versions,
      clock: this.#clock,
      keyStore: {
        createPairedKey: (request, certify) => this.#createPairedKey(request, certify),
        discardKey: (keyId) => this.#keys.delete(keyId),
      },
      ...(options.instanceCa ? { instanceCa: options.instanceCa } : {}),
      ...(options.derivePairingSecrets ? { derivePairingSecrets: options.derivePairingSecrets } : {}),
    });
  }

  get keyIdentifierProfile(): KeyIdentifierProfile {
    return this.#profile;
  }

  get supportedVersions(): readonly number[] {
    return this.#versions;
  }

  /** For tests and the demo: where the applet is in the command sequence. */
  get sessionPhase(): SessionPhase {
    return this.#phase;
  }

  /** Recent CONTROL FLOW outcomes, oldest first. */
  get outcomes(): readonly DeviceTransactionOutcome[] {
    return [...this.#outcomes];
  }

  // ---------------------------------------------------------------------------------------------
  // Owner pairing (§3): the framework applet
  // ---------------------------------------------------------------------------------------------

  /** The user typed the pairing password into the Wallet; SELECT now reports `D4` ready (§3.2). */
  enterPairingPassword(password: string): void {
    this.#framework.enterPassword(password);
  }

  cancelPairing(): void {
    this.#framework.cancel();
  }

  get pairingState(): PairingState {
    return this.#framework.pairingState;
  }

  /** For tests and the demo: where the framework applet is in the §3.2 sequence. */
  get frameworkPhase(): FrameworkPhase {
    return this.#framework.phase;
  }

  /** Recent pairing outcomes, oldest first. */
  get pairingOutcomes(): readonly DevicePairingOutcome[] {
    return this.#framework.outcomes;
  }

  /** The Vehicle OEM root (DER) the car wrote at owner pairing: the owner verifies friends' chains with it (§7 step 3). */
  vehicleOemRootCertificate(keyId: string): Buffer | undefined {
    const root = this.#key(keyId).vehicleOemRoot;
    return root ? Buffer.from(root) : undefined;
  }

  /** `[endpoint, Instance CA, Device OEM CA cross]` (DER) of a paired key, for registration (§3.4). */
  endpointCertificateChain(keyId: string): Buffer[] | undefined {
    return this.#key(keyId).certificateChain?.map((der) => Buffer.from(der));
  }

  // ---------------------------------------------------------------------------------------------
  // Key management (the Wallet / pairing side; §3.4 and §5 wrap these)
  // ---------------------------------------------------------------------------------------------

  /** Generates an endpoint key pair inside the SE and binds it to one vehicle. */
  createKey(request: CreateKeyRequest): CreatedKey {
    const record = this.#newKeyRecord(request);
    if (this.#keys.has(record.keyId)) throw new SecureElementError('bad-argument', 'key identifier collision');
    this.#keys.set(record.keyId, record);
    return {
      keyIdentifier: Buffer.from(record.keyIdentifier),
      keyId: record.keyId,
      endpointPublicKey: record.endpointPublicKey,
    };
  }

  /** Pairing (§3.4): the key and its certificate chain are stored together or not at all. */
  #createPairedKey(request: PairedKeyRequest, certify: (endpointPublicKey: Buffer) => EndpointChainDer): string {
    const record = this.#newKeyRecord({ ...request, role: 'owner' });
    const paired: EndpointKeyRecord = {
      ...record,
      certificateChain: certify(Buffer.from(record.endpointPublicKey)),
      vehicleOemRoot: Buffer.from(request.vehicleOemRoot),
    };
    if (this.#keys.has(paired.keyId)) throw new SecureElementError('bad-argument', 'key identifier collision');
    this.#keys.set(paired.keyId, paired);
    return paired.keyId;
  }

  #newKeyRecord(request: CreateKeyRequest): EndpointKeyRecord {
    checkLength(request.vehicleIdentifier, VEHICLE_IDENTIFIER_LENGTH, 'vehicle identifier');
    const vehiclePublicKey = P256PublicKey.fromPoint(request.vehiclePublicKey);
    const privateMailboxSize = request.privateMailboxSize ?? PRIVATE_MAILBOX_SIZE;
    const confidentialMailboxSize = request.confidentialMailboxSize ?? CONFIDENTIAL_MAILBOX_SIZE;
    checkInteger(privateMailboxSize, 0, 0xffff, 'private mailbox size');
    checkInteger(confidentialMailboxSize, 0, 0xffff, 'confidential mailbox size');
    if (request.role !== undefined && !(request.role in KEY_ROLE_CODES)) {
      throw new SecureElementError('bad-argument', `unknown key role ${String(request.role)}`);
    }
    const entitlements = request.entitlements === undefined ? undefined : encodeEntitlementsInput(request.entitlements);
    const signingKey = this.#generateEndpointKeyPair();
    const keyIdentifier = computeKeyIdentifier(signingKey.publicPoint, this.#profile);
    return {
      keyIdentifier,
      keyId: toHex(keyIdentifier),
      signingKey,
      endpointPublicKey: Buffer.from(signingKey.publicPoint),
      vehicleIdentifier: Buffer.from(request.vehicleIdentifier),
      vehiclePublicKey,
      kpersistent: undefined,
      privateMailbox: Buffer.alloc(privateMailboxSize),
      confidentialMailbox: Buffer.alloc(confidentialMailboxSize),
      state: 'active',
      counter: 0n,
      role: request.role,
      entitlements,
      createdAtMs: this.#clock(),
      termination: undefined,
      certificateChain: undefined,
      vehicleOemRoot: undefined,
    };
  }

  /** Suspends or resumes a key (lost-device mode, §5). Termination goes through `terminateKey`. */
  setKeyState(keyId: string, state: 'active' | 'suspended'): void {
    const key = this.#key(keyId);
    if (key.state === 'terminated') throw new SecureElementError('key-terminated', `key ${keyId} is terminated`);
    if (state !== 'active' && state !== 'suspended') {
      throw new SecureElementError('bad-argument', 'state must be active or suspended');
    }
    key.state = state;
    if (this.#session?.key === key) this.#endTransaction();
  }

  /**
   * Device-side deletion (§5): disables the key at once, offline, and returns the termination
   * attestation signed by the endpoint key, which is then destroyed. Calling it again returns the
   * same attestation.
   */
  terminateKey(keyId: string): TerminationAttestation {
    const key = this.#key(keyId);
    if (key.termination) return key.termination;
    const signingKey = key.signingKey;
    if (!signingKey) throw new SecureElementError('key-terminated', `key ${keyId} has no signing key`);
    key.state = 'terminated';
    if (this.#session?.key === key) this.#endTransaction();
    key.kpersistent?.fill(0);
    key.kpersistent = undefined;
    const unixMs = this.#clock();
    const message = terminationAttestationMessage(key.vehicleIdentifier, key.keyIdentifier, key.counter, unixMs);
    key.termination = {
      vehicleIdentifier: Buffer.from(key.vehicleIdentifier),
      keyIdentifier: Buffer.from(key.keyIdentifier),
      counter: key.counter,
      unixMs,
      endpointPublicKey: Buffer.from(key.endpointPublicKey),
      signature: signingKey.sign(message),
    };
    key.signingKey = undefined;
    return key.termination;
  }

  /**
   * Remote termination (§5): the Vehicle OEM server revoked the key and the Device OEM server
   * relayed it; the applet deletes the key with its private key, Kpersistent and mailboxes.
   * Returns whether the SE held the key (a repeated request is a no-op).
   */
  deleteKey(keyId: string): boolean {
    const key = this.#keys.get(keyId.toLowerCase());
    if (!key) return false;
    if (this.#session?.key === key) this.#endTransaction();
    key.state = 'terminated';
    key.signingKey = undefined;
    key.kpersistent?.fill(0);
    key.kpersistent = undefined;
    key.privateMailbox.fill(0);
    key.confidentialMailbox.fill(0);
    this.#keys.delete(key.keyId);
    return true;
  }

  /**
   * Sharing (§7 step 3): the owner endpoint key signs the friend attestation (KeyImportRequest)
   * for a friend's endpoint key; only an active owner key with the share right (§6) can. Returns
   * the DER `SignedFriendAttestation`.
   */
  signFriendAttestation(ownerKeyId: string, request: FriendAttestationRequest): Buffer {
    const key = this.#key(ownerKeyId);
    const signingKey = key.signingKey;
    if (key.state !== 'active' || !signingKey) {
      throw new SecureElementError('key-terminated', `key ${ownerKeyId} is ${key.state}`);
    }
    if (key.role !== 'owner' || (key.entitlements && !hasRight(decodeEntitlements(key.entitlements), 'share'))) {
      throw new SecureElementError('bad-argument', `key ${ownerKeyId} may not share`);
    }
    return signAttestation(
      {
        vehicleIdentifier: Buffer.from(key.vehicleIdentifier),
        endpointPublicKey: Buffer.from(request.endpointPublicKey),
        entitlements: Buffer.from(request.entitlements),
        notBefore: request.notBefore,
        notAfter: request.notAfter,
        ownerKeyId: Buffer.from(key.keyIdentifier),
      },
      signingKey,
    );
  }

  /** Drops the stored Kpersistent (tests; also what a device does after a reset of its car data). */
  forgetKpersistent(keyId: string): void {
    const key = this.#key(keyId);
    key.kpersistent?.fill(0);
    key.kpersistent = undefined;
  }

  keys(): EndpointKeySummary[] {
    return [...this.#keys.values()].map(summarise);
  }

  key(keyId: string): EndpointKeySummary {
    return summarise(this.#key(keyId));
  }

  readPrivateMailbox(keyId: string): Buffer {
    return Buffer.from(this.#key(keyId).privateMailbox);
  }

  /** Wallet-side write (e.g. the owner's revocation relay or a KTS receipt, §4.7). */
  writePrivateMailbox(keyId: string, offset: number, data: Uint8Array): void {
    const key = this.#key(keyId);
    key.privateMailbox = writeInto(key.privateMailbox, offset, data, 'private mailbox');
  }

  readConfidentialMailbox(keyId: string): Buffer {
    return Buffer.from(this.#key(keyId).confidentialMailbox);
  }

  /** Written by the server through the Device OEM server (immobilizer token, §4.7). */
  writeConfidentialMailbox(keyId: string, offset: number, data: Uint8Array): void {
    const key = this.#key(keyId);
    key.confidentialMailbox = writeInto(key.confidentialMailbox, offset, data, 'confidential mailbox');
  }

  // ---------------------------------------------------------------------------------------------
  // Persistence
  // ---------------------------------------------------------------------------------------------

  /** The whole applet state, private scalars included, sealed with AES-256-GCM under `deviceKey`. */
  exportState(deviceKey: Uint8Array): Buffer {
    const state: PersistedState = {
      format: 1,
      keyIdentifierProfile: this.#profile,
      keys: [...this.#keys.values()].map(persistKey),
    };
    const plaintext = Buffer.from(JSON.stringify(state), 'utf8');
    try {
      return sealState(plaintext, deviceKey);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Restores a state sealed by `exportState`; a wrong device key or a tampered blob is refused. */
  static importState(
    blob: Uint8Array,
    deviceKey: Uint8Array,
    options: Omit<SoftwareSecureElementOptions, 'keyIdentifierProfile'> = {},
  ): SoftwareSecureElement {
    const plaintext = unsealState(blob, deviceKey);
    let state: PersistedState;
    try {
      state = JSON.parse(plaintext.toString('utf8')) as PersistedState;
    } finally {
      plaintext.fill(0);
    }
    if (state.format !== 1 || !Array.isArray(state.keys)) {
      throw new SecureElementError('sealed-state-rejected', 'unknown sealed state format');
    }
    const se = new SoftwareSecureElement({ ...options, keyIdentifierProfile: state.keyIdentifierProfile });
    for (const persisted of state.keys) {
      const record = restoreKey(persisted);
      se.#keys.set(record.keyId, record);
    }
    return se;
  }

  // ---------------------------------------------------------------------------------------------
  // Contactless interface
  // ---------------------------------------------------------------------------------------------

  /** A new field: parse the ECP frame (§4.1) for the express bit and the reader location. */
  pollingFrame(frame: Uint8Array): boolean {
    this.#endTransaction();
    this.#deselect();
    this.#field = undefined;
    try {
      const ecp = parseEcpFrame(frame);
      let readerLocation: number | undefined;
      try {
        readerLocation = decodeCarTci(ecp.tci).location;
      } catch {
        readerLocation = undefined;
      }
      this.#field = { noAuthRequired: ecp.noAuthRequired, readerLocation };
      return true;
    } catch {
      return false;
    }
  }

  fieldLost(): void {
    this.#endTransaction();
    this.#deselect();
    this.#field = undefined;
  }

  /** The applet's APDU handler: always a response APDU, never an exception. */
  transmit(command: Uint8Array): Buffer {
    try {
      return this.#dispatch(asBuffer(command));
    } catch (error) {
      this.#endTransaction();
      if (this.#selected === 'framework') this.#framework.endSession();
      return encodeResponseApdu(EMPTY, statusWordFor(error));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // §4.2 command handlers
  // ---------------------------------------------------------------------------------------------

  #dispatch(raw: Buffer): Buffer {
    if (raw.length < 4) throw new ApduRefusal(SW.WRONG_LENGTH);
    const cla = raw[0];
    if (!KNOWN_CLASSES.includes(cla)) throw new ApduRefusal(SW.BAD_CLA);
    // SELECT switches applets (ISO/IEC 7816-4 §11.2.2); everything else goes to the selected one.
    if (this.#selected === 'framework' && raw[1] !== INS.SELECT) return this.#framework.process(raw);
    const expectedClass = CLASS_OF_INSTRUCTION.get(raw[1]);
    if (expectedClass === undefined) throw new ApduRefusal(SW.BAD_INS);
    if (cla !== expectedClass) throw new ApduRefusal(SW.BAD_CLA);
    let apdu: CommandApdu;
    try {
      apdu = parseCommandApdu(raw);
    } catch (error) {
      const framing = error instanceof ProtocolError && (error.code === 'length' || error.code === 'truncated');
      throw new ApduRefusal(framing ? SW.WRONG_LENGTH : SW.BAD_DATA);
    }
    switch (apdu.ins) {
      case INS.SELECT:
        return this.#select(apdu);
      case INS.AUTH0:
        return this.#auth0(apdu);
      case INS.AUTH1:
        return this.#auth1(apdu);
      case INS.EXCHANGE:
        return this.#exchange(apdu);
      default:
        return this.#controlFlow(apdu);
    }
  }

  #select(apdu: CommandApdu): Buffer {
    const aid = parseSelectCommand(apdu);
    this.#endTransaction();
    this.#deselect();
    if (aid.equals(FRAMEWORK_APPLET_AID)) {
      this.#selected = 'framework';
      return this.#framework.select();
    }
    if (!aid.equals(TRANSACTION_APPLET_AID)) throw new ApduRefusal(SW.NOT_FOUND);
    this.#selected = 'transaction';
    this.#phase = 'selected';
    return this.#selectResponse;
  }

  #auth0(apdu: CommandApdu): Buffer {
    if (this.#phase !== 'selected') throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const auth0 = parseAuth0Command(apdu);
    // A version the device did not offer (a downgrade) is refused (§4.2).
    checkSelectedVersion(auth0.selectedVersion, this.#versions);
    const { vehicleIdentifier } = splitReaderIdentifier(auth0.readerId);
    const key = this.#activeKeyFor(vehicleIdentifier);
    if (key && !this.#userAllows(key, auth0)) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const ephemeral = this.#ephemeralKeys();
    const context = transactionContext(auth0, { endpointEphemeralPublicKey: ephemeral.publicPoint }, this.#versions);
    // Engine start never completes fast (§4.4): such a request gets a random cryptogram.
    const fastKeys =
      key?.kpersistent && auth0.requestFast && isFastTransactionCode(auth0.transactionCode)
        ? deriveFastKeys(key.kpersistent, fastContext(context, key.vehiclePublicKey.point, key.endpointPublicKey))
        : undefined;
    // No Kpersistent for this reader → a random cryptogram, indistinguishable to others (§4.2).
    const cryptogram = auth0.requestFast ? (fastKeys?.cryptogram ?? randomBytes(CRYPTOGRAM_LENGTH)) : undefined;
    if (key) key.counter++;
    this.#session = {
      key,
      vehicleIdentifier: Buffer.from(vehicleIdentifier),
      auth0,
      context,
      ephemeral,
      fastKeys,
      channel: undefined,
      kind: 'none',
      staged: undefined,
    };
    this.#phase = 'authenticating';
    const response = encodeAuth0Response({
      endpointEphemeralPublicKey: ephemeral.publicPoint,
      ...(cryptogram ? { cryptogram } : {}),
    });
    return encodeResponseApdu(response, SW.OK);
  }

  #auth1(apdu: CommandApdu): Buffer {
    const session = this.#session;
    if (this.#phase !== 'authenticating' || !session) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const signature = parseAuth1Command(apdu);
    const key = session.key?.state === 'active' ? session.key : undefined;
    const signingKey = key?.signingKey;
    // The reader must prove it holds the vehicle key before anything identifying leaves (§4.3).
    const genuine = verifyReaderAuthentication(
      key && signingKey ? key.vehiclePublicKey : decoyVehicleKey(),
      session.context,
      signature,
    );
    if (!genuine || !key || !signingKey) throw new ApduRefusal(SW.BAD_DATA);
    const keys = deriveStandardKeys(
      session.ephemeral.sharedSecretX(session.auth0.readerEphemeralPublicKey),
      session.context,
    );
    // §4.3: the new Kpersistent replaces the old one for this car.
    key.kpersistent?.fill(0);
    key.kpersistent = Buffer.from(keys.kpersistent);
    const channel = SecureChannel.afterAuth1(keys, 'device');
    const plaintext = encodeAuth1Response({
      keyIdentifier: key.keyIdentifier,
      deviceSignature: signDeviceAuthentication(signingKey, session.context),
    });
    session.channel = channel;
    session.kind = 'standard';
    this.#phase = 'secured';
    return channel.wrapResponseApdu(plaintext);
  }

  #exchange(apdu: CommandApdu): Buffer {
    const session = this.#session;
    const key = session?.key;
    if (!session || !key || key.state !== 'active') throw new ApduRefusal(SW.WRONG_SEQUENCE);
    if (this.#phase === 'authenticating') {
      // The car matched our cryptogram: its first secured command opens the fast channel (§4.4).
      if (!session.fastKeys) throw new ApduRefusal(SW.WRONG_SEQUENCE);
      session.channel = SecureChannel.afterFast(session.fastKeys, 'device');
      session.kind = 'fast';
      this.#phase = 'secured';
    }
    const channel = session.channel;
    if (this.#phase !== 'secured' || !channel) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    // A MAC failure throws here and ends the session (§4.5: no retry).
    const payload = channel.unwrapCommand(apdu, EXCHANGE_HEADER);
    const result = processMailboxExchange(session.staged ?? key.privateMailbox, payload);
    if (result.status !== 'ok') session.staged = undefined;
    else if (result.request?.more) session.staged = result.mailbox;
    else {
      key.privateMailbox = result.mailbox;
      session.staged = undefined;
    }
    return channel.wrapResponseApdu(result.response);
  }

  #controlFlow(apdu: CommandApdu): Buffer {
    const session = this.#session;
    if (!session) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const { success, reason } = parseControlFlowCommand(apdu);
    if (session.key) {
      this.#outcomes.push({
        at: this.#clock(),
        keyId: session.key.keyId,
        vehicleIdentifier: toHex(session.vehicleIdentifier),
        transaction: session.kind,
        success,
        reason,
      });
      if (this.#outcomes.length > OUTCOME_HISTORY_LIMIT) this.#outcomes.shift();
    }
    this.#endTransaction();
    return encodeResponseApdu(EMPTY, SW.OK);
  }

  // ---------------------------------------------------------------------------------------------
  // internals
  // ---------------------------------------------------------------------------------------------

  /** No applet selected: ends a pairing session too (an undelivered pairing key is discarded). */
  #deselect(): void {
    if (this.#selected === 'framework') this.#framework.endSession();
    this.#selected = undefined;
    this.#phase = 'idle';
  }

  /** Ends the transaction in progress; an unfinished mailbox batch is discarded. */
  #endTransaction(): void {
    this.#session = undefined;
    if (this.#phase === 'authenticating' || this.#phase === 'secured') this.#phase = 'selected';
  }

  #activeKeyFor(vehicleIdentifier: Buffer): EndpointKeyRecord | undefined {
    for (const key of this.#keys.values()) {
      if (key.state === 'active' && key.signingKey && key.vehicleIdentifier.equals(vehicleIdentifier)) return key;
    }
    return undefined;
  }

  #userAllows(key: EndpointKeyRecord, auth0: Auth0Command): boolean {
    if (this.expressMode && this.#field?.noAuthRequired) return true;
    return this.#userConfirmation({
      keyId: key.keyId,
      vehicleIdentifier: toHex(key.vehicleIdentifier),
      transactionCode: auth0.transactionCode,
      ...(this.#field?.readerLocation === undefined ? {} : { readerLocation: this.#field.readerLocation }),
    });
  }

  #key(keyId: string): EndpointKeyRecord {
    const key = this.#keys.get(keyId.toLowerCase());
    if (!key) throw new SecureElementError('key-not-found', `no key ${keyId} in this secure element`);
    return key;
  }
}

function encodeEntitlementsInput(entitlements: Uint8Array | Entitlements): Buffer {
  if (entitlements instanceof Uint8Array) {
    decodeEntitlements(entitlements); // validate
    return Buffer.from(entitlements);
  }
  return encodeEntitlements(entitlements);
}

function writeInto(mailbox: Buffer, offset: number, data: Uint8Array, what: string): Buffer {
  checkInteger(offset, 0, mailbox.length, `${what} offset`);
  if (offset + data.length > mailbox.length) throw new SecureElementError('bad-argument', `write outside the ${what}`);
  const copy = Buffer.from(mailbox);
  copy.set(data, offset);
  return copy;
}

function summarise(key: EndpointKeyRecord): EndpointKeySummary {
  return {
    keyIdentifier: Buffer.from(key.keyIdentifier),
    keyId: key.keyId,
    endpointPublicKey: Buffer.from(key.endpointPublicKey),
    vehicleIdentifier: toHex(key.vehicleIdentifier),
    vehiclePublicKey: Buffer.from(key.vehiclePublicKey.point),
    state: key.state,
    counter: key.counter,
    hasKpersistent: key.kpersistent !== undefined,
    ...(key.role ? { role: key.role } : {}),
    ...(key.entitlements ? { entitlements: Buffer.from(key.entitlements) } : {}),
    createdAtMs: key.createdAtMs,
  };
}

function persistKey(key: EndpointKeyRecord): PersistedKey {
  return {
    keyIdentifier: toHex(key.keyIdentifier),
    ...(key.signingKey ? { privateScalar: toHex(key.signingKey.privateScalar()) } : {}),
    endpointPublicKey: toHex(key.endpointPublicKey),
    vehicleIdentifier: toHex(key.vehicleIdentifier),
    vehiclePublicKey: toHex(key.vehiclePublicKey.point),
    ...(key.kpersistent ? { kpersistent: toHex(key.kpersistent) } : {}),
    privateMailbox: toHex(key.privateMailbox),
    confidentialMailbox: toHex(key.confidentialMailbox),
    state: key.state,
    counter: key.counter.toString(),
    ...(key.role ? { role: key.role } : {}),
    ...(key.entitlements ? { entitlements: toHex(key.entitlements) } : {}),
    createdAtMs: key.createdAtMs,
    ...(key.certificateChain ? { certificateChain: key.certificateChain.map((der) => toHex(der)) } : {}),
    ...(key.vehicleOemRoot ? { vehicleOemRoot: toHex(key.vehicleOemRoot) } : {}),
    ...(key.termination
      ? {
          termination: {
            counter: key.termination.counter.toString(),
            unixMs: key.termination.unixMs,
            signature: toHex(key.termination.signature),
          },
        }
      : {}),
  };
}

function restoreKey(persisted: PersistedKey): EndpointKeyRecord {
  try {
    if (!KEY_STATES.includes(persisted.state)) throw new Error('state');
    const endpointPublicKey = fromHex(persisted.endpointPublicKey);
    const signingKey = persisted.privateScalar
      ? P256KeyPair.fromPrivateScalar(fromHex(persisted.privateScalar))
      : undefined;
    if (signingKey && !signingKey.publicPoint.equals(endpointPublicKey)) throw new Error('key pair');
    const keyIdentifier = fromHex(persisted.keyIdentifier);
    const vehicleIdentifier = fromHex(persisted.vehicleIdentifier);
    const termination = persisted.termination;
    const chain = persisted.certificateChain?.map((der) => fromHex(der));
    if (chain && chain.length !== 3) throw new Error('chain');
    return {
      keyIdentifier,
      keyId: persisted.keyIdentifier,
      signingKey,
      endpointPublicKey,
      vehicleIdentifier,
      vehiclePublicKey: P256PublicKey.fromPoint(fromHex(persisted.vehiclePublicKey)),
      kpersistent: persisted.kpersistent ? fromHex(persisted.kpersistent) : undefined,
      privateMailbox: fromHex(persisted.privateMailbox),
      confidentialMailbox: fromHex(persisted.confidentialMailbox),
      state: persisted.state,
      counter: BigInt(persisted.counter),
      role: persisted.role,
      entitlements: persisted.entitlements ? fromHex(persisted.entitlements) : undefined,
      createdAtMs: persisted.createdAtMs,
      termination: termination
        ? {
            vehicleIdentifier,
            keyIdentifier,
            counter: BigInt(termination.counter),
            unixMs: termination.unixMs,
            endpointPublicKey,
            signature: fromHex(termination.signature),
          }
        : undefined,
      certificateChain: chain ? [chain[0], chain[1], chain[2]] : undefined,
      vehicleOemRoot: persisted.vehicleOemRoot ? fromHex(persisted.vehicleOemRoot) : undefined,
    };
  } catch {
    throw new SecureElementError('sealed-state-rejected', 'sealed state holds an invalid key record');
  }
}
