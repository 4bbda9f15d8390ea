import { applyDecorators, UseInterceptors } from '@nestjs/common';
import { ApiHeader, ApiProperty, ApiPropertyOptional, ApiResponse } from '@nestjs/swagger';
import { IdempotencyInterceptor } from '../idempotency/idempotency.interceptor.js';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, problemTypeUri, type ProblemType } from './problem.js';

export class ProblemResponse {
  @ApiProperty({ example: problemTypeUri('not-found') }) type!: string;
  @ApiProperty({ example: PROBLEM_TYPES['not-found'].title }) title!: string;
  @ApiProperty({ example: 404 }) status!: number;
  @ApiPropertyOptional({ example: 'vehicle WDD1234567A000001 does not exist' }) detail?: string;
  @ApiPropertyOptional({ example: '/v1/vehicles/WDD1234567A000001' }) instance?: string;
}

const TYPE_BY_STATUS: Record<number, ProblemType> = {
  400: 'validation-failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  413: 'payload-too-large',
  422: 'idempotency-key-reused',
  429: 'too-many-requests',
  503: 'service-unavailable',
};

/** The OpenAPI response object of a problem+json answer with this status. */
export function problemResponse(status: number) {
  const type = TYPE_BY_STATUS[status];
  return {
    description: PROBLEM_TYPES[type].title,
    content: {
      [PROBLEM_CONTENT_TYPE]: {
        schema: { $ref: '#/components/schemas/ProblemResponse' },
        example: { type: problemTypeUri(type), title: PROBLEM_TYPES[type].title, status },
      },
    },
  };
}

/** Documents the problem+json responses an operation can return. */
export function ApiProblems(...statuses: number[]) {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, ...problemResponse(status) })));
}

/**
 * A POST that honours `Idempotency-Key`: documents the optional header and applies the
 * IdempotencyInterceptor to the handler. Only routes with this decorator (or `NotReplayable()`)
 * run the interceptor; every other request skips it.
 */
export function ApiIdempotencyKey() {
  return applyDecorators(
    ApiHeader({
      name: 'Idempotency-Key',
      required: false,
      description:
        'Makes the POST safe to retry: same key and body → the stored response; different body → 422; while the first is running → 409.',
      schema: { type: 'string', maxLength: 255, example: '9b6f2c1e-retry-1' },
    }),
    UseInterceptors(IdempotencyInterceptor),
  );
}
