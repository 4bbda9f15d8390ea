import { encodeCommandApdu, encodeResponseApdu, parseCommandApdu, parseResponseApdu, SW, swHex } from './apdu.js';
import type { CommandApdu, ResponseApdu } from './apdu.js';
import { asBuffer, checkLength } from './bytes.js';
import { Aes128, AES_BLOCK_SIZE, padIso9797M2, unpadIso9797M2 } from './crypto/aes.js';
import { AesCmac } from './crypto/cmac.js';
import { constantTimeEqual } from './crypto/constant-time.js';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';
import { CLA_SECURED, type SessionKeys } from './transaction.js';

/**
 * Secure channel of PROTOCOL.md §4.5 (SCP03-like):
 * - payload: ISO/IEC 9797-1 method 2 padding, AES-128-CBC with Kenc; empty payload → no ciphertext;
 * - IV = AES-ECB(Kenc, prefix(15) ‖ counter), prefix `00×15` for commands, `80 00×14` for responses;
 * - command: C-MAC = CMAC(Kmac, MCV ‖ ciphertext), 8 bytes appended, then MCV := full C-MAC;
 * - response: R-MAC = CMAC(Krmac, MCV ‖ ciphertext), 8 bytes appended; the MCV is not changed;
 * - counter: 0 for the AUTH1 response, shared by a command and its response, +1 after each response.
 * The APDU header is not MACed. Any integrity failure closes the channel for good.
 */
export type SecureChannelRole = 'reader' | 'device';

/** `standard`: the first message is the AUTH1 response at counter 0; `fast`: a command at counter 0. */
export type SecureChannelOrigin = 'standard' | 'fast';

export const SECURE_CHANNEL_MAC_LENGTH = 8;
/** The counter is one byte of the IV input; the session ends rather than wrap around. */
export const MAX_SECURE_CHANNEL_COUNTER = 0xff;
/** First counter of a channel opened by a fast transaction **[stand-in]** (no AUTH1 response used 0). */
export const FAST_CHANNEL_FIRST_COUNTER = 0;

const COMMAND_IV_PREFIX = Buffer.alloc(15);
const RESPONSE_IV_PREFIX = Buffer.concat([Buffer.from([0x80]), Buffer.alloc(14)]);
const EMPTY = Buffer.alloc(0);

/** Header fields a receiver may insist on, since §4.5 leaves the header outside the MAC. */
export interface ExpectedCommandHeader {
  readonly ins: number;
  readonly p1?: number;
  readonly p2?: number;
}

/** Header of a command to secure; CLA is always 84. */
export interface SecuredCommandHeader {
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  /** Optional Le (the EXCHANGE vector has none). */
  readonly le?: number;
}

type Awaiting = 'command' | 'response';

export class SecureChannel {
  private readonly keys: SessionKeys;
  // Key schedules are expanded on first use: a fast transaction may end without any secured message.
  private encryptionKey: Aes128 | undefined;
  private commandMacKey: AesCmac | undefined;
  private responseMacKey: AesCmac | undefined;
  private mcv: Buffer = Buffer.alloc(16);
  private counterValue: number;
  private awaiting: Awaiting;
  private failure: ProtocolErrorCode | undefined;

  constructor(
    keys: SessionKeys,
    readonly role: SecureChannelRole,
    readonly origin: SecureChannelOrigin,
  ) {
    checkLength(keys.kenc, 16, 'Kenc');
    checkLength(keys.kmac, 16, 'Kmac');
    checkLength(keys.krmac, 16, 'Krmac');
    this.keys = { kenc: Buffer.from(keys.kenc), kmac: Buffer.from(keys.kmac), krmac: Buffer.from(keys.krmac) };
    this.counterValue = origin === 'standard' ? 0 : FAST_CHANNEL_FIRST_COUNTER;
    this.awaiting = origin === 'standard' ? 'response' : 'command';
  }

  /** Channel after AUTH1: its first message is the encrypted AUTH1 response (counter 0). */
  static afterAuth1(keys: SessionKeys, role: SecureChannelRole): SecureChannel {
    return new SecureChannel(keys, role, 'standard');
  }

  /** Channel after a successful fast cryptogram: its first message is a command. */
  static afterFast(keys: SessionKeys, role: SecureChannelRole): SecureChannel {
    return new SecureChannel(keys, role, 'fast');
  }

  /**
   * Owner-pairing channel under the SPAKE2+ system keys (§3.4): no AUTH1 response precedes it,
   * so, as after a fast transaction, the car's first WRITE DATA is the message at counter 0.
   */
  static afterPairing(keys: SessionKeys, role: SecureChannelRole): SecureChannel {
    return new SecureChannel(keys, role, 'fast');
  }

  /** Counter value the next message will use. */
  get counter(): number {
    return this.counterValue;
  }

  /** Copy of the current MAC chaining value. */
  get macChainingValue(): Buffer {
    return Buffer.from(this.mcv);
  }

  get isOpen(): boolean {
    return this.failure === undefined && this.counterValue <= MAX_SECURE_CHANNEL_COUNTER;
  }

  /** Ends the session (e.g. the peer answered a secured command with a bare error status). */
  close(): void {
    this.failure ??= 'bad-state';
  }

  // ---- reader side -------------------------------------------------------------------------

  /** Reader: encrypts and MACs `plaintext` into a complete `84 INS P1 P2 Lc data [Le]` APDU. */
  wrapCommand(header: SecuredCommandHeader, plaintext: Uint8Array): Buffer {
    this.enter('reader', 'command');
    const ciphertext = this.encrypt(COMMAND_IV_PREFIX, plaintext);
    const cmac = this.commandMac.mac(this.mcv, ciphertext);
    this.mcv = cmac;
    const data = Buffer.concat([ciphertext, cmac.subarray(0, SECURE_CHANNEL_MAC_LENGTH)]);
    this.awaiting = 'response';
    return encodeCommandApdu({
      cla: CLA_SECURED,
      ins: header.ins,
      p1: header.p1,
      p2: header.p2,
      data,
      ...(header.le === undefined ? {} : { le: header.le }),
    });
  }

  /** Reader: verifies and decrypts response data (`ciphertext ‖ R-MAC`, without the status word). */
  unwrapResponse(data: Uint8Array): Buffer {
    this.enter('reader', 'response');
    const { ciphertext, mac } = this.split(data);
    const rmac = this.responseMac.mac(this.mcv, ciphertext);
    if (!constantTimeEqual(rmac.subarray(0, SECURE_CHANNEL_MAC_LENGTH), mac)) this.fail('bad-mac', 'R-MAC mismatch');
    const plaintext = this.decrypt(RESPONSE_IV_PREFIX, ciphertext);
    this.finishResponse();
    return plaintext;
  }

  /** Reader: as `unwrapResponse` on a full response APDU; anything but SW 9000 ends the session. */
  unwrapResponseApdu(raw: Uint8Array): Buffer {
    this.enter('reader', 'response');
    let response: ResponseApdu;
    try {
      response = parseResponseApdu(raw);
    } catch {
      this.fail('bad-mac', 'secured response too short');
    }
    if (response.sw !== SW.OK) {
      if (response.data.length > 0) this.fail('bad-mac', `secured response with status ${swHex(response.sw)}`);
      this.fail('bad-state', `secured command refused with status ${swHex(response.sw)}`);
    }
    return this.unwrapResponse(response.data);
  }

  // ---- device side -------------------------------------------------------------------------

  /**
   * Device: verifies and decrypts a secured command (raw bytes or parsed). The header is not
   * MACed (§4.5), so pass `expected` to have INS/P1/P2 checked too; CLA must be 84.
   */
  unwrapCommand(apdu: Uint8Array | CommandApdu, expected?: ExpectedCommandHeader): Buffer {
    this.enter('device', 'command');
    let command: CommandApdu;
    try {
      command = apdu instanceof Uint8Array ? parseCommandApdu(apdu) : apdu;
    } catch {
      this.fail('bad-mac', 'secured command is not a valid APDU');
    }
    if (
      command.cla !== CLA_SECURED ||
      (expected &&
        (command.ins !== expected.ins ||
          (expected.p1 !== undefined && command.p1 !== expected.p1) ||
          (expected.p2 !== undefined && command.p2 !== expected.p2)))
    ) {
      this.fail('bad-mac', 'secured command header mismatch');
    }
    const { ciphertext, mac } = this.split(command.data);
    const cmac = this.commandMac.mac(this.mcv, ciphertext);
    if (!constantTimeEqual(cmac.subarray(0, SECURE_CHANNEL_MAC_LENGTH), mac)) this.fail('bad-mac', 'C-MAC mismatch');
    this.mcv = cmac;
    const plaintext = this.decrypt(COMMAND_IV_PREFIX, ciphertext);
    this.awaiting = 'response';
    return plaintext;
  }

  /** Device: encrypts and MACs `plaintext` into response data `ciphertext ‖ R-MAC` (no status word). */
  wrapResponse(plaintext: Uint8Array): Buffer {
    this.enter('device', 'response');
    const ciphertext = this.encrypt(RESPONSE_IV_PREFIX, plaintext);
    const rmac = this.responseMac.mac(this.mcv, ciphertext);
    this.finishResponse();
    return Buffer.concat([ciphertext, rmac.subarray(0, SECURE_CHANNEL_MAC_LENGTH)]);
  }

  /** Device: `wrapResponse` followed by SW 9000. */
  wrapResponseApdu(plaintext: Uint8Array): Buffer {
    return encodeResponseApdu(this.wrapResponse(plaintext), SW.OK);
  }

  // ---- internals ---------------------------------------------------------------------------

  private get encryption(): Aes128 {
    return (this.encryptionKey ??= new Aes128(this.keys.kenc));
  }

  private get commandMac(): AesCmac {
    return (this.commandMacKey ??= new AesCmac(this.keys.kmac));
  }

  private get responseMac(): AesCmac {
    return (this.responseMacKey ??= new AesCmac(this.keys.krmac));
  }

  private enter(role: SecureChannelRole, message: Awaiting): void {
    if (this.failure) throw new ProtocolError(this.failure, 'secure channel is closed');
    if (this.role !== role) throw new ProtocolError('bad-state', `a ${this.role} cannot do this`);
    if (this.awaiting !== message) throw new ProtocolError('bad-state', `secure channel expects a ${this.awaiting}`);
    if (this.counterValue > MAX_SECURE_CHANNEL_COUNTER) this.fail('bad-state', 'secure channel counter exhausted');
  }

  private fail(code: ProtocolErrorCode, message: string): never {
    this.failure = code;
    throw new ProtocolError(code, message);
  }

  private finishResponse(): void {
    this.counterValue++;
    this.awaiting = 'command';
  }

  private iv(prefix: Buffer): Buffer {
    const input = Buffer.allocUnsafe(AES_BLOCK_SIZE);
    prefix.copy(input, 0);
    input[15] = this.counterValue;
    return this.encryption.encryptEcb(input);
  }

  private encrypt(prefix: Buffer, plaintext: Uint8Array): Buffer {
    if (plaintext.length === 0) return EMPTY;
    return this.encryption.encryptCbc(this.iv(prefix), padIso9797M2(plaintext));
  }

  private decrypt(prefix: Buffer, ciphertext: Buffer): Buffer {
    if (ciphertext.length === 0) return EMPTY;
    try {
      return unpadIso9797M2(this.encryption.decryptCbc(this.iv(prefix), ciphertext));
    } catch {
      return this.fail('malformed', 'bad padding inside an authenticated message');
    }
  }

  private split(data: Uint8Array): { ciphertext: Buffer; mac: Buffer } {
    const bytes = asBuffer(data);
    const length = bytes.length - SECURE_CHANNEL_MAC_LENGTH;
    if (length < 0 || length % AES_BLOCK_SIZE !== 0) this.fail('bad-mac', 'secured data has an impossible length');
    return { ciphertext: bytes.subarray(0, length), mac: bytes.subarray(length) };
  }
}
