import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SecureElementError } from './secure-element-error.js';

/**
 * Sealed persistence of the applet state: AES-256-GCM under a 32-byte device key (the phone's
 * hardware-bound storage key in real life). The header is authenticated as AAD, so a blob of
 * another format version cannot be replayed into this one.
 *
 * Blob: `"DKSE" ‖ 01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
 */
export const SEALED_STATE_MAGIC = Buffer.from('DKSE', 'ascii');
export const SEALED_STATE_VERSION = 0x01;
export const DEVICE_KEY_LENGTH = 32;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const HEADER = Buffer.concat([SEALED_STATE_MAGIC, Buffer.from([SEALED_STATE_VERSION])]);

function checkDeviceKey(deviceKey: Uint8Array): void {
  if (deviceKey.length !== DEVICE_KEY_LENGTH) {
    throw new SecureElementError('bad-device-key', `device key must be ${DEVICE_KEY_LENGTH} bytes`);
  }
}

export function sealState(plaintext: Uint8Array, deviceKey: Uint8Array): Buffer {
  checkDeviceKey(deviceKey);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', deviceKey, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(HEADER);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([HEADER, nonce, ciphertext, cipher.getAuthTag()]);
}

/** Fails with `sealed-state-rejected` for a wrong key, a tampered blob or an unknown format. */
export function unsealState(blob: Uint8Array, deviceKey: Uint8Array): Buffer {
  checkDeviceKey(deviceKey);
  const bytes = Buffer.from(blob);
  if (bytes.length < HEADER.length + NONCE_LENGTH + TAG_LENGTH || !bytes.subarray(0, HEADER.length).equals(HEADER)) {
    throw new SecureElementError('sealed-state-rejected', 'not a sealed secure-element state');
  }
  const nonce = bytes.subarray(HEADER.length, HEADER.length + NONCE_LENGTH);
  const ciphertext = bytes.subarray(HEADER.length + NONCE_LENGTH, bytes.length - TAG_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', deviceKey, nonce, { authTagLength: TAG_LENGTH });
  decipher.setAAD(HEADER);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_LENGTH));
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new SecureElementError('sealed-state-rejected', 'sealed state does not authenticate under this device key');
  }
}
