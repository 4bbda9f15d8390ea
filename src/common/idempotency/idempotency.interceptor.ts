import {
  applyDecorators,
  Injectable,
  SetMetadata,
  UseInterceptors,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { DataSource } from 'typeorm';
import { canonicalJson } from '../../audit/canonical-json.js';
import { constantTimeEqual } from '../../protocol/crypto/constant-time.js';
import { ProblemException } from '../errors/problem.js';
import { requestContextOf } from '../request/request-context.js';
import { IdempotencyRecord } from './idempotency-record.entity.js';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const NOT_REPLAYABLE = 'idempotency-not-replayable';

/**
 * For responses that must never be stored (a password shown once): an Idempotency-Key is
 * refused rather than silently ignored, so a client does not believe it can retry safely.
 * Applies the interceptor to the handler, which answers such a request with 400.
 */
export const NotReplayable = () =>
  applyDecorators(SetMetadata(NOT_REPLAYABLE, true), UseInterceptors(IdempotencyInterceptor));
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** An in-progress record older than this belongs to a request that died; a retry may take it over. */
const ABANDONED_AFTER_MS = 60_000;

/**
 * `Idempotency-Key` on POST: the same key with the same request returns the stored response;
 * with a different request, 422; while the first is still running, 409. Keys are scoped to the
 * caller, so two partners cannot collide or read each other's responses. Applied per handler by
 * `ApiIdempotencyKey()` (and `NotReplayable()`), not globally, so other requests never pass here.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(
    private readonly dataSource: DataSource,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (request.method !== 'POST' || header === undefined) return next.handle();
    if (this.reflector.get<boolean | undefined>(NOT_REPLAYABLE, context.getHandler())) {
      throw new ProblemException(
        'bad-request',
        'this operation returns a secret once and cannot take an Idempotency-Key',
      );
    }
    return from(this.handle(context, request, header, next));
  }

  private async handle(
    context: ExecutionContext,
    request: FastifyRequest,
    header: string | string[],
    next: CallHandler,
  ): Promise<unknown> {
    const key = Array.isArray(header) ? header[0] : header;
    if (!KEY_PATTERN.test(key)) {
      throw new ProblemException('bad-request', 'Idempotency-Key must be 1-255 visible ASCII characters');
    }
    const { actor } = requestContextOf(request);
    const principal = `${actor.type}:${actor.id}`;
    const route = request.routeOptions?.url ?? request.url;
    const requestHash = createHash('sha256')
      .update(`${request.method} ${request.url}\n${route}\n${canonicalJson(request.body ?? null)}`)
      .digest('hex');
    const repository = this.dataSource.getRepository(IdempotencyRecord);

    const claimed = await this.claim(principal, key, requestHash);
    if (!claimed) {
      const existing = await repository.findOneBy({ principal, key });
      if (!existing) throw new ProblemException('idempotency-request-in-progress', 'retry the request');
      if (!constantTimeEqual(existing.requestHash, requestHash)) {
        throw new ProblemException('idempotency-key-reused', 'this Idempotency-Key was sent with a different request');
      }
      if (existing.status !== 'completed') {
        throw new ProblemException(
          'idempotency-request-in-progress',
          'the first request with this key is still running',
        );
      }
      const reply = context.switchToHttp().getResponse<FastifyReply>();
      void reply.header('idempotent-replayed', 'true');
      return existing.responseBody;
    }

    try {
      const body: unknown = await lastValueFrom(next.handle() as Observable<unknown>, { defaultValue: undefined });
      const status =
        this.reflector.get<number | undefined>(HTTP_CODE_METADATA, context.getHandler()) ??
        (request.method === 'POST' ? 201 : 200);
      await repository.update(
        { principal, key },
        {
          status: 'completed',
          responseStatus: status,
          responseBody: (body ?? null) as object,
          completedAt: new Date(),
        },
      );
      return body;
    } catch (error) {
      // A failed request leaves no record: the client may retry with the same key.
      await repository.delete({ principal, key }).catch(() => undefined);
      throw error;
    }
  }

  /** Inserts the in-progress record; false when the key is already taken by a live request. */
  private async claim(principal: string, key: string, requestHash: string): Promise<boolean> {
    const inserted = await this.dataSource.query<Array<{ key: string }>>(
      `INSERT INTO idempotency_keys (principal, key, request_hash, status)
       VALUES ($1, $2, $3, 'in-progress')
       ON CONFLICT (principal, key) DO UPDATE
          SET request_hash = EXCLUDED.request_hash, created_at = now()
        WHERE idempotency_keys.status = 'in-progress'
          AND idempotency_keys.request_hash = EXCLUDED.request_hash
          AND idempotency_keys.created_at < now() - make_interval(secs => $4::double precision / 1000)
       RETURNING key`,
      [principal, key, requestHash, ABANDONED_AFTER_MS],
    );
    return inserted.length > 0;
  }
}
