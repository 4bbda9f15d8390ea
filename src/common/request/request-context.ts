import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../../audit/audit.service.js';
import type { OperatorRequest } from '../auth/operator-auth.guard.js';
import type { MtlsRequest } from '../auth/mtls-principal.guard.js';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';

/** Who did it and under which correlation id: what every state change records. */
export interface RequestContext {
  actor: AuditActor;
  correlationId: string;
}

export function requestContextOf(request: FastifyRequest): RequestContext {
  const operator = (request as OperatorRequest).operator;
  const principal = (request as MtlsRequest).principal;
  let actor: AuditActor = { type: 'system', id: 'anonymous' };
  if (operator) actor = { type: 'operator', id: operator.subject };
  else if (principal?.kind === 'partner') actor = { type: 'partner', id: principal.partner };
  else if (principal?.kind === 'vehicle') actor = { type: 'vehicle', id: principal.vin };
  return { actor, correlationId: request.id };
}

/** Handler parameter: the caller and correlation id of this request. */
export const Context = createParamDecorator((_data: unknown, context: ExecutionContext) =>
  requestContextOf(context.switchToHttp().getRequest<FastifyRequest>()),
);
