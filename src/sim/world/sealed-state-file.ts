import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SecretBox } from '../../common/crypto/secret-box.js';

/** Binds the ciphertext to its purpose: a blob sealed for something else does not open here. */
const ASSOCIATED_DATA = 'digital-key-simulator-state:1';

/** The state file or its key cannot be used; the message names the file. */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

/** `state.json` → `state.key`; any other name gets `.key` appended. */
export function keyFileFor(statePath: string): string {
  return statePath.endsWith('.json') ? `${statePath.slice(0, -'.json'.length)}.key` : `${statePath}.key`;
}

/**
 * A JSON document kept sealed at rest: AES-256-GCM (`SecretBox`) under a 32-byte key in its own
 * file next to it (mode 0600, created on first use). Writes are atomic: a temporary file in the
 * same folder, then a rename, so a crash leaves the old state or the new one, never half of one.
 * File: `{"format":1,"sealed":"<base64>"}`.
 */
export class SealedStateFile<T> {
  readonly keyPath: string;
  readonly #box: SecretBox;

  private constructor(
    readonly path: string,
    keyPath: string,
    box: SecretBox,
  ) {
    this.keyPath = keyPath;
    this.#box = box;
  }

  /** Reads the key next to `path`, or creates one if neither the key nor the state exists yet. */
  static open<T>(path: string, keyPath = keyFileFor(path)): SealedStateFile<T> {
    let key: string;
    if (existsSync(keyPath)) {
      key = readFileSync(keyPath, 'utf8').trim();
    } else {
      if (existsSync(path)) {
        throw new StateFileError(`${path} exists but its key ${keyPath} does not: the state cannot be opened`);
      }
      key = randomBytes(32).toString('base64');
      mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
      writeFileSync(keyPath, `${key}\n`, { mode: 0o600, flag: 'wx' });
    }
    let box: SecretBox;
    try {
      box = new SecretBox(key);
    } catch {
      throw new StateFileError(`${keyPath} does not hold a 32-byte key (base64)`);
    }
    return new SealedStateFile<T>(path, keyPath, box);
  }

  /** The saved document, or `undefined` when nothing was saved yet. Tampered or foreign → StateFileError. */
  load(): T | undefined {
    if (!existsSync(this.path)) return undefined;
    let sealed: Buffer;
    try {
      const envelope = JSON.parse(readFileSync(this.path, 'utf8')) as { format?: unknown; sealed?: unknown };
      if (envelope.format !== 1 || typeof envelope.sealed !== 'string') throw new Error('format');
      sealed = Buffer.from(envelope.sealed, 'base64');
    } catch {
      throw new StateFileError(`${this.path} is not a sealed state file`);
    }
    let plaintext: Buffer;
    try {
      plaintext = this.#box.open(sealed, ASSOCIATED_DATA);
    } catch {
      throw new StateFileError(
        `${this.path} does not open under ${this.keyPath}: tampered, or sealed under another key`,
      );
    }
    try {
      return JSON.parse(plaintext.toString('utf8')) as T;
    } finally {
      plaintext.fill(0);
    }
  }

  /** Seals and writes the document atomically (temporary file, then rename). */
  save(document: T): void {
    const plaintext = Buffer.from(JSON.stringify(document), 'utf8');
    let sealed: Buffer;
    try {
      sealed = this.#box.seal(plaintext, ASSOCIATED_DATA);
    } finally {
      plaintext.fill(0);
    }
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify({ format: 1, sealed: sealed.toString('base64') }), { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, this.path);
  }
}
