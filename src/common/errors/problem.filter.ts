import { ArgumentsHost, Catch, HttpException, Logger, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { QueryFailedError } from 'typeorm';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, ProblemException, problemTypeUri, type ProblemType } from './problem.js';

const STATUS_TO_TYPE: Record<number, ProblemType> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  422: 'idempotency-key-reused',
  429: 'too-many-requests',
  503: 'service-unavailable',
};

/** Errors that mean "PostgreSQL is not reachable now" rather than "this query is wrong". */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P03', '08006', '08001'].includes(code)) {
    return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Connection refused/i.test(error.message);
}

/**
 * Turns every error into RFC 9457 problem+json. Stack traces and driver messages never reach
 * the client; unexpected errors are logged with the request id.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Problem');

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    const document = this.toDocument(error, request);
    if (document.status === 503) {
      // A dependency outage is not a bug: one short line per request, no stack.
      this.logger.warn({ msg: 'dependency unavailable', requestId: request.id, url: request.url, error: brief(error) });
    } else if (document.status >= 500) {
      this.logger.error({ msg: 'request failed', requestId: request.id, url: request.url, error: describe(error) });
    }
    void reply.status(document.status).header('content-type', PROBLEM_CONTENT_TYPE).send(document);
  }

  private toDocument(error: unknown, request: FastifyRequest) {
    const instance = request.url;
    if (error instanceof ProblemException) return error.toDocument(instance);
    if (error instanceof HttpException) {
      const status = error.getStatus();
      const type = STATUS_TO_TYPE[status] ?? (status >= 500 ? 'internal' : 'bad-request');
      const body = error.getResponse();
      const message = typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : body;
      const detail = Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : undefined;
      return { type: problemTypeUri(type), title: PROBLEM_TYPES[type].title, status, detail, instance };
    }
    const fastifyStatus = (error as { statusCode?: number } | null)?.statusCode;
    if (typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500) {
      const type = STATUS_TO_TYPE[fastifyStatus] ?? 'bad-request';
      const detail = error instanceof Error ? error.message : undefined;
      return { type: problemTypeUri(type), title: PROBLEM_TYPES[type].title, status: fastifyStatus, detail, instance };
    }
    if (
      isDatabaseUnavailable(error) ||
      (error instanceof QueryFailedError && isDatabaseUnavailable(error.driverError))
    ) {
      return new ProblemException('service-unavailable', 'the database is unavailable').toDocument(instance);
    }
    return new ProblemException('internal', `request ${request.id} failed`).toDocument(instance);
  }
}

function brief(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error);
}
