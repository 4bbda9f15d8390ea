import type { KeyObject } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { ecdsaSign, ecdsaVerify } from './p256.js';

/**
 * Compact JWS with ES256 only (RFC 7515 §7.1, RFC 7518 §3.4), on node:crypto: the telematics
 * commands and acks and the partner notifications (PROTOCOL.md §8). A hot path of the worker
 * and the cars: `jose`'s Web Crypto route costs about twice the CPU per signature, most of it
 * turning a KeyObject into a CryptoKey on every call. Interoperability with `jose` is tested
 * both ways.
 */

export interface JwsHeader {
  typ?: string;
  kid?: string;
}

export interface VerifiedJws {
  header: Record<string, unknown> & { alg: 'ES256' };
  payload: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** A JWS larger than this is refused before any parsing (commands with a full SYNC stay well below). */
const MAX_JWS_LENGTH = 1 << 20;

function segment(part: string, what: string): Buffer {
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw new ProtocolError('malformed', `${what} is not base64url`);
  return Buffer.from(part, 'base64url');
}

/** Signs `payload` with the P-256 `key`; the header always says ES256. */
export function signCompactJws(payload: Uint8Array | string, key: KeyObject, header: JwsHeader = {}): string {
  const protectedHeader = Buffer.from(JSON.stringify({ alg: 'ES256', ...header })).toString('base64url');
  const signingInput = `${protectedHeader}.${Buffer.from(payload).toString('base64url')}`;
  return `${signingInput}.${ecdsaSign(key, Buffer.from(signingInput, 'ascii')).toString('base64url')}`;
}

/**
 * Verifies a compact ES256 JWS against `key` and returns its header and payload. Throws
 * ProtocolError `malformed` (not a compact JWS), `unsupported` (another algorithm, `crit`, or an
 * unencoded payload) or `bad-signature`.
 */
export function verifyCompactJws(jws: string, key: KeyObject): VerifiedJws {
  if (typeof jws !== 'string' || jws.length > MAX_JWS_LENGTH) throw new ProtocolError('length', 'the JWS is too long');
  const parts = jws.split('.');
  if (parts.length !== 3) throw new ProtocolError('malformed', 'a compact JWS has three parts');
  const [encodedHeader, encodedPayload, encodedSignature] = parts;
  let header: unknown;
  try {
    header = JSON.parse(segment(encodedHeader, 'the header').toString('utf8'));
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError('malformed', 'the header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ProtocolError('malformed', 'the header is not a JSON object');
  }
  const fields = header as Record<string, unknown>;
  if (fields.alg !== 'ES256') throw new ProtocolError('unsupported', 'only ES256 is accepted');
  if ('crit' in fields || 'b64' in fields) throw new ProtocolError('unsupported', 'no JWS extensions are accepted');
  const payload = segment(encodedPayload, 'the payload');
  const signature = segment(encodedSignature, 'the signature');
  if (!ecdsaVerify(key, Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii'), signature)) {
    throw new ProtocolError('bad-signature', 'the JWS signature does not verify');
  }
  return { header: fields as VerifiedJws['header'], payload };
}
