import { scryptSync, X509Certificate } from 'node:crypto';
import {
  encodeResponseApdu,
  parseCommandApdu,
  segmentResponse,
  SW,
  type CommandApdu,
  type ResponseApdu,
} from '../../protocol/apdu.js';
import { asBuffer, u16 } from '../../protocol/bytes.js';
import { readEndpointCertificateFields } from '../../protocol/certificate-extensions.js';
import { ProtocolError } from '../../protocol/errors.js';
import {
  encodeEndpointChain,
  encodeFrameworkSelectResponse,
  encodeSpake2RequestResponse,
  encodeSpake2VerifyResponse,
  FRAMEWORK_CLASS_OF_INSTRUCTION,
  FRAMEWORK_INS,
  GET_DATA_HEADER,
  MAX_PAIRING_DATA_LENGTH,
  parsePairingDataStream,
  parseSpake2RequestCommand,
  parseSpake2VerifyCommand,
  SUPPORTED_SPAKE2PLUS_VERSIONS,
  WRITE_DATA_HEADER,
  type EndpointChainDer,
  type PairingData,
  type PairingState,
  type Spake2RequestCommand,
} from '../../protocol/pairing.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import {
  Spake2PlusProver,
  verifierFromScryptOutput,
  type ProverSecrets,
  type ScryptCost,
} from '../../protocol/spake2plus.js';
import { PAIRING_PASSWORD_DIGITS, SCRYPT_OUTPUT_LENGTH } from '../../protocol/spake2plus-password.js';
import { parseControlFlowCommand, type ControlFlowReason } from '../../protocol/transaction.js';
import { ApduRefusal, statusWordFor } from './apdu-refusal.js';
import type { InstanceCertificateAuthority } from './instance-certificate-authority.js';
import { SecureElementError } from './secure-element-error.js';

/** Where the framework applet is in the §3.2 sequence. */
export type FrameworkPhase = 'idle' | 'selected' | 'spake2-requested' | 'secured' | 'key-created';

/** Failed evidences one entered password allows before the device drops it (PROTOCOL.md §3.1 step 5). */
export const DEVICE_PAIRING_ATTEMPTS = 7;

/**
 * The device's scrypt policy **[stand-in]**: a SPAKE2+ REQUEST outside it is refused, so a
 * hostile reader can neither make the phone burn memory nor ask for a trivially weak cost.
 */
export const DEVICE_SCRYPT_LIMITS = { minN: 1024, maxMemoryBytes: 64 * 1024 * 1024, maxR: 32, maxP: 4 } as const;

/** At most this many pairing outcomes are kept. */
export const PAIRING_OUTCOME_HISTORY_LIMIT = 32;

/** password, salt, cost → (w0, w1) (§3.1 step 3); injectable so benchmarks can time scrypt apart. */
export type PairingSecretsDerivation = (password: Buffer, salt: Buffer, cost: ScryptCost) => ProverSecrets;

/** z = scrypt(password, salt, N, r, p, 80) → w0, w1, synchronously: an APDU is answered in one go. */
export function derivePairingSecretsWithScrypt(password: Buffer, salt: Buffer, cost: ScryptCost): ProverSecrets {
  const { N, r, p } = cost;
  const z = scryptSync(password, salt, SCRYPT_OUTPUT_LENGTH, { N, r, p, maxmem: 2 * 128 * N * r + 128 * r * p });
  try {
    const { w0, w1 } = verifierFromScryptOutput(z);
    return { w0, w1 };
  } finally {
    z.fill(0);
  }
}

export function checkDeviceScryptCost({ N, r, p }: ScryptCost): void {
  const limits = DEVICE_SCRYPT_LIMITS;
  const powerOfTwo = Number.isSafeInteger(N) && N > 0 && (N & (N - 1)) === 0;
  if (
    !powerOfTwo ||
    N < limits.minN ||
    r < 1 ||
    r > limits.maxR ||
    p < 1 ||
    p > limits.maxP ||
    128 * N * r > limits.maxMemoryBytes
  ) {
    throw new ProtocolError('unsupported', `scrypt cost N=${N} r=${r} p=${p} is outside the device policy`);
  }
}

/** Why a pairing ended, as the device saw it. */
export type DevicePairingReason =
  | ControlFlowReason
  | 'wrong-evidence'
  | 'attempts-exhausted-on-device'
  | 'vehicle-certificate-refused'
  /** The field went away after the chain left the SE: the key is kept, the car may hold it. */
  | 'unconfirmed'
  | 'aborted';

/** One pairing attempt as the device recorded it (the Wallet's "Paired" or "Try again"). */
export interface DevicePairingOutcome {
  readonly at: number;
  readonly success: boolean;
  readonly reason: DevicePairingReason;
  readonly keyId?: string;
  readonly vehicleIdentifier?: string;
}

/** What the framework applet asks of the SE's key store: generation stays inside the SE. */
export interface PairedKeyRequest {
  readonly vehicleIdentifier: Buffer;
  readonly vehiclePublicKey: Buffer;
  readonly vehicleOemRoot: Buffer;
  readonly entitlements: Buffer;
  readonly privateMailboxSize: number;
  readonly confidentialMailboxSize: number;
}

export interface PairingKeyStore {
  /**
   * Generates an owner endpoint key inside the SE bound to the car, has `certify` issue its
   * chain, and stores both; nothing is stored when `certify` throws.
   */
  createPairedKey(request: PairedKeyRequest, certify: (endpointPublicKey: Buffer) => EndpointChainDer): string;
  /** Removes a key the car never confirmed. */
  discardKey(keyId: string): void;
}

export interface FrameworkAppletOptions {
  readonly keyStore: PairingKeyStore;
  /** The Device OEM's Instance CA for this automaker; without it the device cannot pair. */
  readonly instanceCa?: InstanceCertificateAuthority;
  /** DK applet versions listed in `5C`, highest first. */
  readonly appletVersions: readonly number[];
  readonly derivePairingSecrets?: PairingSecretsDerivation;
  readonly clock: () => number;
}

interface PairingSession {
  phase: Exclude<FrameworkPhase, 'idle'>;
  prover: Spake2PlusProver | undefined;
  channel: SecureChannel | undefined;
  stream: Buffer[];
  streamLength: number;
  created: { keyId: string; chain: EndpointChainDer; vehicleIdentifier: string } | undefined;
  /** The chain left the SE: the car may now hold the key, so it is kept unless the car refuses it. */
  delivered: boolean;
  /** `61xx` remainders awaiting GET RESPONSE. */
  pendingChunks: ResponseApdu[];
}

const EMPTY = Buffer.alloc(0);
const PASSWORD_PATTERN = new RegExp(`^\\d{${PAIRING_PASSWORD_DIGITS}}$`);

/**
 * The framework applet of the software SE (PROTOCOL.md §3.2–3.4, device = SPAKE2+ prover):
 * SELECT, SPAKE2+ REQUEST and VERIFY (the car's evidence M1 is checked, in constant time,
 * before M2 leaves), then WRITE DATA and GET DATA inside the pairing secure channel, and OP
 * CONTROL FLOW. The endpoint key is generated inside the SE and certified by the Instance CA
 * the device holds. Every APDU gets a status word; any failure ends the pairing session.
 */
export class FrameworkApplet {
  readonly #options: FrameworkAppletOptions;
  readonly #derive: PairingSecretsDerivation;
  readonly #appletVersions: Buffer;
  readonly #outcomes: DevicePairingOutcome[] = [];
  #password: Buffer | undefined;
  #failedEvidences = 0;
  #session: PairingSession | undefined;

  constructor(options: FrameworkAppletOptions) {
    this.#options = options;
    this.#derive = options.derivePairingSecrets ?? derivePairingSecretsWithScrypt;
    this.#appletVersions = Buffer.concat(options.appletVersions.map((version) => u16(version)));
  }

  /** `D4`: ready once the user has typed a pairing password and the device can certify keys. */
  get pairingState(): PairingState {
    return this.#password && this.#options.instanceCa ? 'ready' : 'none';
  }

  get phase(): FrameworkPhase {
    return this.#session?.phase ?? 'idle';
  }

  get outcomes(): readonly DevicePairingOutcome[] {
    return [...this.#outcomes];
  }

  /** The user typed the 8-digit pairing password into the Wallet (§3.1). */
  enterPassword(password: string): void {
    if (!PASSWORD_PATTERN.test(password)) {
      throw new SecureElementError('bad-argument', `the pairing password is ${PAIRING_PASSWORD_DIGITS} digits`);
    }
    this.#clearPassword();
    this.#password = Buffer.from(password, 'utf8');
    this.#failedEvidences = 0;
  }

  cancel(): void {
    this.#clearPassword();
    this.#endSession();
  }

  /** SELECT of the framework AID: a new session. */
  select(): Buffer {
    this.#endSession();
    this.#session = {
      phase: 'selected',
      prover: undefined,
      channel: undefined,
      stream: [],
      streamLength: 0,
      created: undefined,
      delivered: false,
      pendingChunks: [],
    };
    const data = encodeFrameworkSelectResponse({
      spake2Versions: SUPPORTED_SPAKE2PLUS_VERSIONS,
      appletVersions: this.#options.appletVersions,
      pairingState: this.pairingState,
    });
    return encodeResponseApdu(data, SW.OK);
  }

  /** Another applet was selected, the field went away, or the SE refused an APDU before routing it. */
  endSession(): void {
    this.#endSession();
  }

  /** One APDU while the framework applet is selected; never throws. */
  process(raw: Buffer): Buffer {
    try {
      return this.#dispatch(raw);
    } catch (error) {
      this.#endSession();
      return encodeResponseApdu(EMPTY, statusWordFor(error));
    }
  }

  #dispatch(raw: Buffer): Buffer {
    if (raw.length < 4) throw new ApduRefusal(SW.WRONG_LENGTH);
    const expectedClass = FRAMEWORK_CLASS_OF_INSTRUCTION.get(raw[1]);
    if (expectedClass === undefined) throw new ApduRefusal(SW.BAD_INS);
    if (raw[0] !== expectedClass) throw new ApduRefusal(SW.BAD_CLA);
    let apdu: CommandApdu;
    try {
      apdu = parseCommandApdu(raw);
    } catch (error) {
      const framing = error instanceof ProtocolError && (error.code === 'length' || error.code === 'truncated');
      throw new ApduRefusal(framing ? SW.WRONG_LENGTH : SW.BAD_DATA);
    }
    const session = this.#session;
    if (!session) {
      // The car may still say why it gave up (e.g. 0D after the seventh wrong password, §3.1).
      if (apdu.ins === FRAMEWORK_INS.OP_CONTROL_FLOW) return this.#lateControlFlow(apdu);
      throw new ApduRefusal(SW.WRONG_SEQUENCE);
    }
    // ISO/IEC 7816-4: any command but GET RESPONSE discards the rest of a chained response.
    if (apdu.ins !== FRAMEWORK_INS.GET_RESPONSE) session.pendingChunks = [];
    switch (apdu.ins) {
      case FRAMEWORK_INS.SPAKE2_REQUEST:
        return this.#spake2Request(session, apdu);
      case FRAMEWORK_INS.SPAKE2_VERIFY:
        return this.#spake2Verify(session, apdu);
      case FRAMEWORK_INS.WRITE_DATA:
        return this.#writeData(session, apdu);
      case FRAMEWORK_INS.GET_DATA:
        return this.#getData(session, apdu);
      case FRAMEWORK_INS.GET_RESPONSE:
        return this.#getResponse(session, apdu);
      case FRAMEWORK_INS.OP_CONTROL_FLOW:
        return this.#controlFlow(session, apdu);
      default:
        // SELECT is routed by the SE before it reaches the applet.
        throw new ApduRefusal(SW.WRONG_SEQUENCE);
    }
  }

  #spake2Request(session: PairingSession, apdu: CommandApdu): Buffer {
    if (session.phase !== 'selected') throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const password = this.#password;
    if (!password || !this.#options.instanceCa) throw new ApduRefusal(SW.PAIRING_NOT_READY);
    const request = parseSpake2RequestCommand(apdu);
    this.#checkVersions(request);
    checkDeviceScryptCost(request.scrypt);
    const secrets = this.#derive(password, request.salt, request.scrypt);
    try {
      session.prover = new Spake2PlusProver(secrets, {
        selectedVersion: request.selectedVersion,
        supportedVersions: request.appletVersions,
      });
    } finally {
      secrets.w0.fill(0);
      secrets.w1.fill(0);
    }
    const X = session.prover.start();
    session.phase = 'spake2-requested';
    return encodeResponseApdu(encodeSpake2RequestResponse(X), SW.OK);
  }

  /** The selected version must be one `5A` offered, and `5C` must be our list as sent (no downgrade). */
  #checkVersions(request: Spake2RequestCommand): void {
    const selected = request.selectedVersion.readUInt16BE(0);
    if (!SUPPORTED_SPAKE2PLUS_VERSIONS.includes(selected)) {
      throw new ProtocolError('unsupported', `SPAKE2+ version ${selected.toString(16)} was not offered`);
    }
    if (!request.appletVersions.equals(this.#appletVersions)) {
      throw new ProtocolError('malformed', 'the applet versions are not the ones this device listed');
    }
  }

  #spake2Verify(session: PairingSession, apdu: CommandApdu): Buffer {
    const prover = session.prover;
    if (session.phase !== 'spake2-requested' || !prover) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    const { Y, M1 } = parseSpake2VerifyCommand(apdu);
    session.prover = undefined;
    let finish: ReturnType<Spake2PlusProver['finish']>;
    try {
      // M1 is compared in constant time inside `finish`, and M2 exists only after it matched.
      finish = prover.finish(Y, M1);
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'bad-mac') this.#wrongEvidence();
      throw error;
    }
    const { Kenc, Kmac, Krmac } = finish.systemKeys;
    session.channel = SecureChannel.afterPairing({ kenc: Kenc, kmac: Kmac, krmac: Krmac }, 'device');
    session.phase = 'secured';
    return encodeResponseApdu(encodeSpake2VerifyResponse(finish.M2), SW.OK);
  }

  /** Wrong password (or a car without the right verifier): counted; the entry goes after the last try. */
  #wrongEvidence(): never {
    this.#failedEvidences++;
    if (this.#failedEvidences >= DEVICE_PAIRING_ATTEMPTS) {
      this.#clearPassword();
      this.#record({ success: false, reason: 'attempts-exhausted-on-device' });
      throw new ApduRefusal(SW.PAIRING_NOT_READY);
    }
    this.#record({ success: false, reason: 'wrong-evidence' });
    throw new ApduRefusal(SW.BAD_DATA);
  }

  #writeData(session: PairingSession, apdu: CommandApdu): Buffer {
    const channel = session.channel;
    if (session.phase !== 'secured' || !channel) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    // A MAC failure throws here and ends the session (§4.5: no retry).
    const block = channel.unwrapCommand(apdu, WRITE_DATA_HEADER);
    if (session.streamLength + block.length > MAX_PAIRING_DATA_LENGTH) throw new ApduRefusal(SW.WRONG_LENGTH);
    session.stream.push(block);
    session.streamLength += block.length;
    const progress = parsePairingDataStream(Buffer.concat(session.stream));
    if (progress.complete) {
      session.created = this.#createKey(progress.data);
      session.stream = [];
      session.phase = 'key-created';
    }
    return channel.wrapResponseApdu(EMPTY);
  }

  /** §3.4: check the car's certificate, then generate and certify the endpoint key inside the SE. */
  #createKey(data: PairingData): PairingSession['created'] {
    const instanceCa = this.#options.instanceCa;
    if (!instanceCa) throw new ApduRefusal(SW.PAIRING_NOT_READY);
    let vehiclePublicKey: Buffer;
    try {
      vehiclePublicKey = verifyVehicleCertificate(data, new Date(this.#options.clock()));
    } catch (error) {
      this.#record({ success: false, reason: 'vehicle-certificate-refused' });
      throw error;
    }
    const entitlements = data.options.entitlements;
    let chain: EndpointChainDer | undefined;
    const keyId = this.#options.keyStore.createPairedKey(
      {
        vehicleIdentifier: data.vehicleIdentifier,
        vehiclePublicKey,
        vehicleOemRoot: data.vehicleOemRoot,
        entitlements,
        privateMailboxSize: data.options.privateMailboxSize,
        confidentialMailboxSize: data.options.confidentialMailboxSize,
      },
      (endpointPublicKey) =>
        (chain = instanceCa.issueEndpointChain({
          endpointPublicKey,
          vehicleIdentifier: data.vehicleIdentifier,
          role: 'owner',
          entitlements,
          now: new Date(this.#options.clock()),
        })),
    );
    if (!chain) throw new ProtocolError('bad-state', 'no endpoint certificate was issued');
    return { keyId, chain, vehicleIdentifier: data.vehicleIdentifier.toString('hex') };
  }

  #getData(session: PairingSession, apdu: CommandApdu): Buffer {
    const channel = session.channel;
    const created = session.created;
    if (session.phase !== 'key-created' || !channel || !created) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    if (channel.unwrapCommand(apdu, GET_DATA_HEADER).length !== 0) throw new ApduRefusal(SW.BAD_DATA);
    const chunks = segmentResponse(channel.wrapResponse(encodeEndpointChain(created.chain)));
    session.delivered = true;
    // One password, one key: the entry is used up once the chain has left (§3.1).
    this.#clearPassword();
    const [first, ...rest] = chunks;
    session.pendingChunks = rest;
    return encodeResponseApdu(first.data, first.sw);
  }

  #getResponse(session: PairingSession, apdu: CommandApdu): Buffer {
    const next = session.pendingChunks.shift();
    if (!next) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    if (apdu.p1 !== 0 || apdu.p2 !== 0 || apdu.data.length !== 0) throw new ApduRefusal(SW.BAD_DATA);
    return encodeResponseApdu(next.data, next.sw);
  }

  #controlFlow(session: PairingSession, apdu: CommandApdu): Buffer {
    const { success, reason } = parseControlFlowCommand(apdu);
    const created = session.created;
    if (success && !(created && session.delivered)) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    if (created && success) {
      this.#record({ success: true, reason, keyId: created.keyId, vehicleIdentifier: created.vehicleIdentifier });
      session.created = undefined; // confirmed: `#endSession` keeps it
    } else {
      this.#record({
        success: false,
        reason,
        ...(created ? { keyId: created.keyId, vehicleIdentifier: created.vehicleIdentifier } : {}),
      });
      if (created) {
        this.#options.keyStore.discardKey(created.keyId);
        session.created = undefined;
      }
    }
    this.#endSession();
    return encodeResponseApdu(EMPTY, SW.OK);
  }

  /** OP CONTROL FLOW after the session ended: a failure is noted for the Wallet, a success is out of sequence. */
  #lateControlFlow(apdu: CommandApdu): Buffer {
    const { success, reason } = parseControlFlowCommand(apdu);
    if (success) throw new ApduRefusal(SW.WRONG_SEQUENCE);
    this.#record({ success: false, reason });
    return encodeResponseApdu(EMPTY, SW.OK);
  }

  /** Ends the session; a key whose chain never left the SE is discarded, as nobody can use it. */
  #endSession(): void {
    const session = this.#session;
    this.#session = undefined;
    const created = session?.created;
    if (!created) return;
    if (session.delivered) {
      // The car may hold it as pending: keep it, it can still be registered (§3.4).
      this.#record({
        success: true,
        reason: 'unconfirmed',
        keyId: created.keyId,
        vehicleIdentifier: created.vehicleIdentifier,
      });
      return;
    }
    this.#options.keyStore.discardKey(created.keyId);
    this.#record({ success: false, reason: 'aborted', vehicleIdentifier: created.vehicleIdentifier });
  }

  #clearPassword(): void {
    this.#password?.fill(0);
    this.#password = undefined;
  }

  #record(outcome: Omit<DevicePairingOutcome, 'at'>): void {
    this.#outcomes.push({ at: this.#options.clock(), ...outcome });
    if (this.#outcomes.length > PAIRING_OUTCOME_HISTORY_LIMIT) this.#outcomes.shift();
  }
}

/**
 * The SE checks the vehicle certificate against the root it was given (§2, device verifies the
 * car) and that it names the vehicle identifier of DF03; returns the vehicle public key.
 */
export function verifyVehicleCertificate(data: PairingData, now: Date): Buffer {
  let root: X509Certificate;
  let certificate: X509Certificate;
  try {
    root = new X509Certificate(data.vehicleOemRoot);
    certificate = new X509Certificate(data.vehicleCertificate);
  } catch {
    throw new ProtocolError('malformed', 'the vehicle certificate or root is not DER X.509');
  }
  if (!root.ca || !root.verify(root.publicKey)) throw new ProtocolError('bad-signature', 'the root is not a root CA');
  if (!certificate.checkIssued(root) || !certificate.verify(root.publicKey)) {
    throw new ProtocolError('bad-signature', 'the vehicle certificate is not issued by the root');
  }
  if (certificate.ca) throw new ProtocolError('malformed', 'the vehicle certificate is a CA');
  if (new Date(certificate.validFrom) > now || new Date(certificate.validTo) < now) {
    throw new ProtocolError('out-of-range', 'the vehicle certificate is outside its validity');
  }
  const key = certificate.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ProtocolError('bad-key', 'the vehicle key must be EC P-256');
  }
  const { vehicleIdentifier } = readEndpointCertificateFields(certificate.raw);
  if (!vehicleIdentifier?.equals(data.vehicleIdentifier)) {
    throw new ProtocolError('malformed', 'the vehicle certificate names another vehicle identifier');
  }
  const spki = key.export({ type: 'spki', format: 'der' });
  return Buffer.from(asBuffer(spki).subarray(spki.length - 65));
}
