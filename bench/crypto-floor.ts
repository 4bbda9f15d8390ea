import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
  type Cipher,
  type Decipher,
  type ECDH,
  type KeyObject,
} from 'node:crypto';

/**
 * The floor: the bare node:crypto operations one transaction needs on both sides (car and SE),
 * with no parsing, APDUs, TLVs or state — an upper bound on what the simulators could reach.
 * The operation counts mirror the measured path:
 * - standard (engine start, §4.3): 2 ECDSA sign, 2 verify, 2 ECDH, 2 X9.63 (one SHA-256 block),
 *   4 HKDF, secure channel keys on both sides, AUTH1 response + one EXCHANGE both ways;
 * - fast (unlock, §4.4): 2 HKDF (device cryptogram, car match), keys, one EXCHANGE both ways.
 * Both also draw a 16-byte transaction id. Ephemeral generation is counted only when `inline`.
 */
export type FloorScenario = 'standard' | 'fast';

const SIGNING = { dsaEncoding: 'ieee-p1363' } as const;
const EMPTY = Buffer.alloc(0);
const ZERO_BLOCK = Buffer.alloc(16);
/** Plaintext sizes of the secured messages (bytes before padding): AUTH1 response, EXCHANGE command, response. */
const AUTH1_RESPONSE_LENGTH = 76;
const EXCHANGE_COMMAND_LENGTH = 11;
const EXCHANGE_RESPONSE_LENGTH = 63;

function ecb(key: Buffer): Cipher {
  return createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
}

function ecbDecrypt(key: Buffer): Decipher {
  return createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false);
}

function padded(length: number): number {
  return (Math.floor(length / 16) + 1) * 16;
}

/** One side's secure-channel key schedules: AES for Kenc, CMAC subkeys for Kmac and Krmac. */
class ChannelSide {
  readonly enc: Cipher;
  readonly dec: Decipher;
  readonly cmac: Cipher;
  readonly rmac: Cipher;

  constructor(keys: Buffer) {
    this.enc = ecb(keys.subarray(0, 16));
    this.dec = ecbDecrypt(keys.subarray(0, 16));
    this.cmac = ecb(keys.subarray(16, 32));
    this.rmac = ecb(keys.subarray(32, 48));
    this.cmac.update(ZERO_BLOCK); // CMAC subkey derivation
    this.rmac.update(ZERO_BLOCK);
  }
}

/** Sender: IV, CBC encryption block by block, CMAC; receiver: CMAC, IV, CBC decryption in one pass. */
function securedMessage(sender: ChannelSide, receiver: ChannelSide, mac: 'cmac' | 'rmac', length: number): void {
  const blocks = padded(length) / 16;
  const data = randomBlocks(blocks);
  let chain = sender.enc.update(ZERO_BLOCK);
  for (let i = 0; i < blocks; i++) chain = sender.enc.update(xorBlock(data, i, chain));
  for (const side of [sender, receiver]) {
    let state = ZERO_BLOCK;
    for (let i = 0; i <= blocks; i++) state = side[mac].update(i === 0 ? state : xorBlock(data, i - 1, state));
  }
  receiver.enc.update(ZERO_BLOCK);
  receiver.dec.update(data);
}

const SCRATCH = randomBytes(16 * 8);
function randomBlocks(blocks: number): Buffer {
  return SCRATCH.subarray(0, blocks * 16);
}

function xorBlock(data: Buffer, index: number, previous: Buffer): Buffer {
  const out = Buffer.allocUnsafe(16);
  for (let i = 0; i < 16; i++) out[i] = data[index * 16 + i] ^ previous[i];
  return out;
}

export class CryptoFloor {
  readonly #vehicle: { privateKey: KeyObject; publicKey: KeyObject };
  readonly #endpoint: { privateKey: KeyObject; publicKey: KeyObject };
  readonly #signatureInput = randomBytes(110);
  readonly #standardInfo = randomBytes(101);
  readonly #fastInfo = randomBytes(185);
  readonly #kpersistent = randomBytes(32);
  readonly #readerPool: ECDH[] = [];
  readonly #devicePool: ECDH[] = [];

  constructor(private readonly inline: boolean) {
    this.#vehicle = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#endpoint = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  }

  /** Off the timed path, as the measured path's pools. */
  refill(size: number): void {
    if (this.inline) return;
    while (this.#readerPool.length < size) this.#readerPool.push(ephemeral());
    while (this.#devicePool.length < size) this.#devicePool.push(ephemeral());
  }

  run(scenario: FloorScenario): void {
    randomBytes(16);
    const reader = this.inline ? ephemeral() : (this.#readerPool.pop() ?? ephemeral());
    const device = this.inline ? ephemeral() : (this.#devicePool.pop() ?? ephemeral());
    if (scenario === 'fast') {
      const deviceKeys = Buffer.from(hkdfSync('sha256', this.#kpersistent, EMPTY, this.#fastInfo, 64));
      const carKeys = Buffer.from(hkdfSync('sha256', this.#kpersistent, EMPTY, this.#fastInfo, 64));
      const carSide = new ChannelSide(carKeys.subarray(16));
      const deviceSide = new ChannelSide(deviceKeys.subarray(16));
      securedMessage(carSide, deviceSide, 'cmac', EXCHANGE_COMMAND_LENGTH);
      securedMessage(deviceSide, carSide, 'rmac', EXCHANGE_RESPONSE_LENGTH);
      return;
    }
    const readerSignature = sign('sha256', this.#signatureInput, { key: this.#vehicle.privateKey, ...SIGNING });
    verify('sha256', this.#signatureInput, { key: this.#vehicle.publicKey, ...SIGNING }, readerSignature);
    const sides: ChannelSide[] = [];
    for (const [own, peer] of [
      [device, reader],
      [reader, device],
    ] as const) {
      const z = own.computeSecret(peer.getPublicKey());
      const kdh = createHash('sha256').update(z).update(ZERO_BLOCK.subarray(0, 4)).update(ZERO_BLOCK).digest();
      const volatile = Buffer.from(hkdfSync('sha256', kdh, EMPTY, this.#standardInfo, 48));
      hkdfSync('sha256', kdh, EMPTY, this.#standardInfo, 32);
      sides.push(new ChannelSide(volatile));
    }
    const [deviceSide, carSide] = sides;
    const deviceSignature = sign('sha256', this.#signatureInput, { key: this.#endpoint.privateKey, ...SIGNING });
    securedMessage(deviceSide, carSide, 'rmac', AUTH1_RESPONSE_LENGTH);
    verify('sha256', this.#signatureInput, { key: this.#endpoint.publicKey, ...SIGNING }, deviceSignature);
    securedMessage(carSide, deviceSide, 'cmac', EXCHANGE_COMMAND_LENGTH);
    securedMessage(deviceSide, carSide, 'rmac', EXCHANGE_RESPONSE_LENGTH);
  }
}

function ephemeral(): ECDH {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh;
}
