import { Inject, Injectable, SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG } from '../../config/config.tokens.js';
import type { AppConfig } from '../../config/config.js';
import { ProblemException } from '../errors/problem.js';
import { RateLimiter } from '../rate-limit/rate-limiter.js';
import type { OperatorScope } from './operator-scopes.js';
import { OperatorTokenError, OperatorTokenVerifier, type OperatorIdentity } from './operator-token.js';

const SCOPES_KEY = 'operator-scopes';

/** Marks a handler as an operator call that needs every listed scope. */
export const RequireScopes = (...scopes: OperatorScope[]) => SetMetadata(SCOPES_KEY, scopes);

export interface OperatorRequest extends FastifyRequest {
  operator?: OperatorIdentity;
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  return match?.[1];
}

/** Admin listener guard: an ES256 bearer token with the scopes the handler declares. */
@Injectable()
export class OperatorAuthGuard implements CanActivate {
  private readonly verifier: OperatorTokenVerifier;

  constructor(
    private readonly reflector: Reflector,
    private readonly rateLimiter: RateLimiter,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.verifier = new OperatorTokenVerifier(config.pki.operatorTokenPublicKeyPem);
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const required = this.reflector.getAllAndOverride<OperatorScope[] | undefined>(SCOPES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    // Deny by default: an operator route that forgot to declare its scopes is not public.
    if (!required || required.length === 0) throw new ProblemException('forbidden', 'this operation declares no scope');
    const request = context.switchToHttp().getRequest<OperatorRequest>();
    request.operator = await this.authenticate(request.headers.authorization);
    await this.rateLimiter.enforce(
      'operator',
      request.operator.subject,
      context.switchToHttp().getResponse<FastifyReply>(),
    );
    const missing = required.filter((scope) => !request.operator!.scopes.includes(scope));
    if (missing.length > 0) {
      throw new ProblemException('forbidden', `the token lacks the scope ${missing.join(', ')}`, {
        requiredScopes: required,
      });
    }
    return true;
  }

  async authenticate(authorization: string | undefined): Promise<OperatorIdentity> {
    const token = bearerToken(authorization);
    if (!token) throw new ProblemException('unauthorized', 'send an operator token as "Authorization: Bearer <token>"');
    try {
      return await this.verifier.verify(token);
    } catch (error) {
      const detail = error instanceof OperatorTokenError ? error.message : 'the token is not valid';
      throw new ProblemException('unauthorized', detail);
    }
  }
}
