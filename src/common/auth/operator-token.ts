import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import {
  OPERATOR_SCOPES,
  OPERATOR_TOKEN_AUDIENCE,
  OPERATOR_TOKEN_ISSUER,
  type OperatorScope,
} from './operator-scopes.js';

export interface OperatorIdentity {
  subject: string;
  scopes: OperatorScope[];
}

export interface IssueOperatorTokenOptions {
  subject: string;
  scopes: readonly OperatorScope[];
  ttlSeconds: number;
}

/** Signs an ES256 operator token (used by `npm run cli -- token` and by tests). */
export function issueOperatorToken(privateKeyPem: string, options: IssueOperatorTokenOptions): Promise<string> {
  const key = createPrivateKey(privateKeyPem);
  return new SignJWT({ scope: options.scopes.join(' ') })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
    .setIssuer(OPERATOR_TOKEN_ISSUER)
    .setAudience(OPERATOR_TOKEN_AUDIENCE)
    .setSubject(options.subject)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds}s`)
    .sign(key);
}

export type OperatorTokenFailure = 'missing' | 'invalid' | 'expired';

export class OperatorTokenError extends Error {
  constructor(
    readonly reason: OperatorTokenFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Verifies operator tokens with one pinned ES256 key. The algorithm list is fixed, so `alg:
 * none` and HS256-with-the-public-key tokens are refused by jose before any signature check.
 */
export class OperatorTokenVerifier {
  private readonly key: KeyObject;

  constructor(publicKeyPem: string) {
    this.key = createPublicKey(publicKeyPem);
  }

  async verify(token: string): Promise<OperatorIdentity> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['ES256'],
        issuer: OPERATOR_TOKEN_ISSUER,
        audience: OPERATOR_TOKEN_AUDIENCE,
        requiredClaims: ['sub', 'exp', 'iat'],
        clockTolerance: 5,
      });
      const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
      return {
        subject: payload.sub ?? 'unknown',
        scopes: scopes.filter((scope): scope is OperatorScope =>
          (OPERATOR_SCOPES as readonly string[]).includes(scope),
        ),
      };
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new OperatorTokenError('expired', 'the token has expired');
      throw new OperatorTokenError('invalid', 'the token is not valid');
    }
  }
}
