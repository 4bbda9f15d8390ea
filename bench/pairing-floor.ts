import { p256 } from '@noble/curves/nist.js';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  scryptSync,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { SPAKE2PLUS_P256_M_HEX, SPAKE2PLUS_P256_N_HEX } from '../src/protocol/spake2plus.js';

/** Sizes and material of one real pairing, so the floor does the same amount of work. */
export interface PairingFloorMaterial {
  readonly w0: Buffer;
  readonly w1: Buffer;
  readonly L: Buffer;
  /** DER. */
  readonly vehicleCertificate: Buffer;
  readonly vehicleOemRoot: Buffer;
  /** `[endpoint, Instance CA, Device OEM CA cross]`, DER. */
  readonly chain: readonly Buffer[];
  readonly instanceCaKey: KeyObject;
  /** Plaintext bytes of each WRITE DATA block, and of the GET DATA response. */
  readonly writeBlocks: readonly number[];
  readonly getDataLength: number;
}

const Point = p256.Point;
const ORDER = Point.Fn.ORDER;
const G = Point.BASE;
const M = Point.fromHex(SPAKE2PLUS_P256_M_HEX).precompute(8);
const N = Point.fromHex(SPAKE2PLUS_P256_N_HEX).precompute(8);
const EMPTY = Buffer.alloc(0);
const ZERO_IV = Buffer.alloc(16);

const scalar = (bytes: Buffer): bigint => BigInt(`0x${bytes.toString('hex')}`);
const randomScalar = (): bigint => (scalar(randomBytes(32)) % (ORDER - 1n)) + 1n;
const padded = (length: number): number => (Math.floor(length / 16) + 1) * 16;

function paddedCopy(bytes: Uint8Array): Buffer {
  return Buffer.concat([bytes, Buffer.alloc(padded(bytes.length) - bytes.length)]);
}

function cbc(key: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv('aes-128-cbc', key, ZERO_IV).setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** A secured message (§4.5): sender encrypts and MACs, receiver MACs and decrypts. */
function securedMessage(keys: Buffer, length: number): void {
  const data = randomBytes(padded(length));
  const ciphertext = cbc(keys.subarray(0, 16), data);
  cbc(keys.subarray(16, 32), ciphertext); // sender MAC
  cbc(keys.subarray(16, 32), ciphertext); // receiver MAC
  const decipher = createDecipheriv('aes-128-cbc', keys.subarray(0, 16), ZERO_IV).setAutoPadding(false);
  Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

/**
 * The floor of one pairing (§3.3–3.4), both sides: the bare library operations with no APDUs,
 * TLVs or state. SPAKE2+ on noble (prover: x·G + w0·M, then x and w1 times Y − w0·N; verifier:
 * y·G + w0·N, then y times X − w0·M and L; point validation of X, Y, L), SHA-256 and HKDF
 * (node:crypto) for the key schedule, AES-CBC-MAC for the evidences and every secured WRITE
 * DATA / GET DATA message, endpoint key generation, one certificate signature, and the
 * certificate parsing and verification the SE (vehicle certificate) and the car (chain) do.
 */
export class PairingFloor {
  readonly #material: PairingFloorMaterial;
  readonly #w0: bigint;
  readonly #w1: bigint;
  readonly #root: X509Certificate;
  readonly #tbs: Buffer;

  constructor(material: PairingFloorMaterial) {
    this.#material = material;
    this.#w0 = scalar(material.w0);
    this.#w1 = scalar(material.w1);
    this.#root = new X509Certificate(material.vehicleOemRoot);
    // The endpoint certificate's TBS is its DER minus signature algorithm and value (~80 bytes).
    this.#tbs = randomBytes(material.chain[0].length - 80);
  }

  /** scrypt at the given cost (§3.1 step 3), the device's part before SPAKE2+. */
  static scrypt(cost: { N: number; r: number; p: number }): void {
    scryptSync('12345678', randomBytes(16), 80, { ...cost, maxmem: 2 * 128 * cost.N * cost.r + 128 * cost.r * cost.p });
  }

  run(): void {
    const m = this.#material;
    // SPAKE2+ shares and shared points, both sides.
    const x = randomScalar();
    const X = G.multiply(x).add(M.multiply(this.#w0)).toBytes(false);
    const y = randomScalar();
    const Y = G.multiply(y).add(N.multiply(this.#w0)).toBytes(false);
    const carX = Point.fromBytes(X);
    carX.assertValidity();
    const L = Point.fromBytes(m.L);
    L.assertValidity();
    const carUnblinded = carX.subtract(M.multiply(this.#w0));
    const carPoints = [carUnblinded.multiply(y).toBytes(false), L.multiply(y).toBytes(false)];
    const deviceY = Point.fromBytes(Y);
    deviceY.assertValidity();
    const deviceUnblinded = deviceY.subtract(N.multiply(this.#w0));
    const devicePoints = [
      deviceUnblinded.multiply(x).toBytes(false),
      deviceUnblinded.multiply(this.#w1).toBytes(false),
    ];

    // Key schedule and evidences, both sides.
    for (const [Z, V] of [carPoints, devicePoints]) {
      const K = createHash('sha256').update(X).update(Y).update(Z).update(V).update(m.w0).digest();
      const confirmation = Buffer.from(hkdfSync('sha256', K.subarray(0, 16), EMPTY, 'ConfirmationKeys5B5C', 32));
      Buffer.from(hkdfSync('sha256', K.subarray(16, 32), EMPTY, 'SystemKeys', 64));
      cbc(confirmation.subarray(0, 16), paddedCopy(X)); // M1 = CMAC(K1, X)
      cbc(confirmation.subarray(16, 32), paddedCopy(Y)); // M2 = CMAC(K2, Y)
    }

    // The pairing secure channel: WRITE DATA blocks with their R-MACs, then GET DATA.
    const keys = randomBytes(48);
    for (const block of m.writeBlocks) {
      securedMessage(keys, block);
      securedMessage(keys, 0);
    }
    securedMessage(keys, 0);
    securedMessage(keys, m.getDataLength);

    // SE: vehicle certificate against the root; endpoint key; its certificate.
    const root = new X509Certificate(m.vehicleOemRoot);
    const vehicle = new X509Certificate(m.vehicleCertificate);
    root.verify(root.publicKey);
    vehicle.verify(root.publicKey);
    generateKeyPairSync('ec', { namedCurve: 'P-256' });
    sign('sha256', this.#tbs, m.instanceCaKey);

    // Car: the chain against its own (already parsed) root.
    const [endpoint, instance, cross] = m.chain.map((der) => new X509Certificate(der));
    endpoint.verify(instance.publicKey);
    instance.verify(cross.publicKey);
    cross.verify(this.#root.publicKey);
  }
}
