import { aesCmac } from './crypto/cmac.js';
import { constantTimeEqual } from './crypto/constant-time.js';
import { ProtocolError } from './errors.js';
import {
  computeProverPoints,
  computeProverShare,
  computeVerifierPoints,
  computeVerifierShare,
  decodeScalar,
  parseShare,
  randomScalar,
} from './spake2plus-group.js';
import type { ProverSecrets, VerifierRecord } from './spake2plus-password.js';
import { hkdfSha256, sha256 } from './crypto/kdf.js';
import { encodeTranscript } from './spake2plus-rfc9383.js';

// Owner-pairing SPAKE2+ (PROTOCOL.md §3.3): car = verifier, device = prover. The group arithmetic
// is RFC 9383's; the transcript, key split and evidences are the project profile's.

export {
  computeL,
  computeProverPoints,
  computeProverShare,
  computeVerifierPoints,
  computeVerifierShare,
  parseShare,
  randomScalar,
  SPAKE2PLUS_P256_M_HEX,
  SPAKE2PLUS_P256_N_HEX,
} from './spake2plus-group.js';
export type { SharedPoints } from './spake2plus-group.js';
export {
  deriveVerifierFromPassword,
  generatePairingPassword,
  generatePairingSalt,
  PAIRING_SCRYPT_COST,
  verifierFromScryptOutput,
} from './spake2plus-password.js';
export type { PasswordVerifier, ProverSecrets, ScryptCost, VerifierRecord } from './spake2plus-password.js';
export { rfc9383KeySchedule, rfc9383Transcript } from './spake2plus-rfc9383.js';
export type { Rfc9383Keys, Rfc9383TranscriptInput, Spake2PlusSuite } from './spake2plus-rfc9383.js';

const TAG_SELECTED_VERSION = 0x5b;
const TAG_SUPPORTED_VERSIONS = 0x5c;
const VERSION_LENGTH = 2;
const CONFIRMATION_LABEL = Buffer.from('ConfirmationKeys', 'ascii');
const SYSTEM_KEYS_LABEL = Buffer.from('SystemKeys', 'ascii');

/**
 * The versions exchanged in SPAKE2+ REQUEST (`5B` selected, `5C` list, PROTOCOL.md §3.2); both
 * sides bind the bytes exactly as sent, so a downgrade changes K1/K2.
 */
export interface VersionBinding {
  selectedVersion: Uint8Array;
  supportedVersions: Uint8Array;
}

export interface PairingTranscriptInput extends VersionBinding {
  X: Uint8Array;
  Y: Uint8Array;
  Z: Uint8Array;
  V: Uint8Array;
  w0: Uint8Array;
}

/** Secure-channel keys for the pairing session (§3.4) and the long-term secret, 16 bytes each. */
export interface SystemKeys {
  Kenc: Buffer;
  Kmac: Buffer;
  Krmac: Buffer;
  longTermSharedSecret: Buffer;
}

export interface PairingKeys {
  TT: Buffer;
  K: Buffer;
  confirmationInfo: Buffer;
  K1: Buffer;
  K2: Buffer;
  /** Car evidence (tag 57) = AES-CMAC(K1, X). */
  M1: Buffer;
  /** Device evidence (tag 58) = AES-CMAC(K2, Y). */
  M2: Buffer;
  systemKeys: SystemKeys;
}

function shortTlv(tag: number, value: Uint8Array): Buffer {
  if (value.length > 0x7f) throw new ProtocolError('length', `TLV ${tag.toString(16)} value too long`);
  return Buffer.concat([Buffer.from([tag, value.length]), value]);
}

/** "ConfirmationKeys" ‖ TLV 5B(selected) ‖ TLV 5C(versions) (PROTOCOL.md §3.3). */
export function confirmationKeysInfo({ selectedVersion, supportedVersions }: VersionBinding): Buffer {
  if (selectedVersion.length !== VERSION_LENGTH) {
    throw new ProtocolError('length', `selected version must be ${VERSION_LENGTH} bytes`);
  }
  if (supportedVersions.length === 0 || supportedVersions.length % VERSION_LENGTH !== 0) {
    throw new ProtocolError('length', 'supported versions must be a non-empty list of 2-byte versions');
  }
  return Buffer.concat([
    CONFIRMATION_LABEL,
    shortTlv(TAG_SELECTED_VERSION, selectedVersion),
    shortTlv(TAG_SUPPORTED_VERSIONS, supportedVersions),
  ]);
}

/** PROTOCOL.md §3.3 key schedule from the shares, the shared points and w0. */
export function pairingKeySchedule(input: PairingTranscriptInput): PairingKeys {
  const { X, Y, Z, V, w0 } = input;
  const TT = encodeTranscript([X, Y, Z, V, w0]);
  const K = sha256(TT);
  const confirmationInfo = confirmationKeysInfo(input);
  const confirmationKeys = hkdfSha256(K.subarray(0, 16), undefined, confirmationInfo, 32);
  const K1 = confirmationKeys.subarray(0, 16);
  const K2 = confirmationKeys.subarray(16, 32);
  const system = hkdfSha256(K.subarray(16, 32), undefined, SYSTEM_KEYS_LABEL, 64);
  return {
    TT,
    K,
    confirmationInfo,
    K1,
    K2,
    M1: aesCmac(K1, X),
    M2: aesCmac(K2, Y),
    systemKeys: {
      Kenc: system.subarray(0, 16),
      Kmac: system.subarray(16, 32),
      Krmac: system.subarray(32, 48),
      longTermSharedSecret: system.subarray(48, 64),
    },
  };
}

function copyVersions({ selectedVersion, supportedVersions }: VersionBinding): VersionBinding {
  const copy = { selectedVersion: Buffer.from(selectedVersion), supportedVersions: Buffer.from(supportedVersions) };
  confirmationKeysInfo(copy);
  return copy;
}

function checkedScalar(bytes: Uint8Array, name: string): Buffer {
  decodeScalar(bytes, name);
  return Buffer.from(bytes);
}

export interface ProverFinish {
  /** Device evidence for SPAKE2+ VERIFY's response (tag 58). */
  M2: Buffer;
  systemKeys: SystemKeys;
}

/** Device side (prover): one session per instance; any failure ends it. */
export class Spake2PlusProver {
  readonly #w0: Buffer;
  readonly #w1: Buffer;
  readonly #versions: VersionBinding;
  #session: { x: Buffer; X: Buffer } | 'idle' | 'ended' = 'idle';

  constructor(secrets: ProverSecrets, versions: VersionBinding) {
    this.#w0 = checkedScalar(secrets.w0, 'w0');
    this.#w1 = checkedScalar(secrets.w1, 'w1');
    this.#versions = copyVersions(versions);
  }

  /** X for the SPAKE2+ REQUEST response (tag 50); `x` is injectable for vectors and tests. */
  start(x: Uint8Array = randomScalar()): Buffer {
    if (this.#session !== 'idle') throw new ProtocolError('bad-state', 'SPAKE2+ prover already started');
    this.#session = 'ended';
    const ephemeral = checkedScalar(x, 'x');
    const X = computeProverShare(this.#w0, ephemeral);
    this.#session = { x: ephemeral, X };
    return Buffer.from(X);
  }

  /** Checks the car evidence M1 in constant time before revealing M2 (PROTOCOL.md §3.3). */
  finish(Y: Uint8Array, M1: Uint8Array): ProverFinish {
    const session = this.#session;
    if (typeof session === 'string') throw new ProtocolError('bad-state', 'SPAKE2+ prover not awaiting Y');
    this.#session = 'ended';
    try {
      const { Z, V } = computeProverPoints(this.#w0, this.#w1, session.x, Y);
      const keys = pairingKeySchedule({ ...this.#versions, X: session.X, Y, Z, V, w0: this.#w0 });
      if (!constantTimeEqual(keys.M1, M1)) throw new ProtocolError('bad-mac', 'car evidence M1 does not match');
      return { M2: keys.M2, systemKeys: keys.systemKeys };
    } finally {
      session.x.fill(0);
    }
  }
}

export interface VerifierResponse {
  /** Verifier share for SPAKE2+ VERIFY (tag 52). */
  Y: Buffer;
  /** Car evidence (tag 57). */
  M1: Buffer;
}

/** Car side (verifier): holds w0 and L only; one session per instance; any failure ends it. */
export class Spake2PlusVerifier {
  readonly #w0: Buffer;
  readonly #L: Buffer;
  readonly #versions: VersionBinding;
  #session: { M2: Buffer; systemKeys: SystemKeys } | 'idle' | 'ended' = 'idle';

  constructor(record: VerifierRecord, versions: VersionBinding) {
    this.#w0 = checkedScalar(record.w0, 'w0');
    this.#L = parseShare(record.L);
    this.#versions = copyVersions(versions);
  }

  /** Answers the device's X (rejecting invalid points and the identity); `y` is injectable. */
  respond(X: Uint8Array, y: Uint8Array = randomScalar()): VerifierResponse {
    if (this.#session !== 'idle') throw new ProtocolError('bad-state', 'SPAKE2+ verifier already responded');
    this.#session = 'ended';
    const ephemeral = checkedScalar(y, 'y');
    try {
      const share = parseShare(X);
      const Y = computeVerifierShare(this.#w0, ephemeral);
      const { Z, V } = computeVerifierPoints(this.#w0, this.#L, ephemeral, share);
      const keys = pairingKeySchedule({ ...this.#versions, X: share, Y, Z, V, w0: this.#w0 });
      this.#session = { M2: keys.M2, systemKeys: keys.systemKeys };
      return { Y, M1: keys.M1 };
    } finally {
      ephemeral.fill(0);
    }
  }

  /** Checks the device evidence M2 in constant time; only then are the system keys released. */
  confirm(M2: Uint8Array): SystemKeys {
    const session = this.#session;
    if (typeof session === 'string') throw new ProtocolError('bad-state', 'SPAKE2+ verifier not awaiting M2');
    this.#session = 'ended';
    if (!constantTimeEqual(session.M2, M2)) {
      throw new ProtocolError('bad-mac', 'device evidence M2 does not match');
    }
    return session.systemKeys;
  }
}
