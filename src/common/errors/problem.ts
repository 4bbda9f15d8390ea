import { HttpException, HttpStatus } from '@nestjs/common';

/**
 * Stable problem types (RFC 9457 `type`), one per kind of failure a client can act on. The
 * identifiers are URNs: they name the problem without promising a page behind them.
 */
export const PROBLEM_TYPES = {
  'bad-request': { status: HttpStatus.BAD_REQUEST, title: 'The request is malformed' },
  'validation-failed': { status: HttpStatus.BAD_REQUEST, title: 'The request body or parameters are invalid' },
  unauthorized: { status: HttpStatus.UNAUTHORIZED, title: 'Authentication is required' },
  forbidden: { status: HttpStatus.FORBIDDEN, title: 'The caller may not do this' },
  'not-found': { status: HttpStatus.NOT_FOUND, title: 'No such resource' },
  conflict: { status: HttpStatus.CONFLICT, title: 'The request conflicts with the current state' },
  'idempotency-request-in-progress': {
    status: HttpStatus.CONFLICT,
    title: 'A request with this Idempotency-Key is still being processed',
  },
  'idempotency-key-reused': {
    status: HttpStatus.UNPROCESSABLE_ENTITY,
    title: 'This Idempotency-Key was used with a different request',
  },
  'payload-too-large': { status: HttpStatus.PAYLOAD_TOO_LARGE, title: 'The request body is too large' },
  'too-many-requests': {
    status: HttpStatus.TOO_MANY_REQUESTS,
    title: 'Too many requests from this caller; retry after the Retry-After delay',
  },
  'unsupported-media-type': { status: HttpStatus.UNSUPPORTED_MEDIA_TYPE, title: 'The request body must be JSON' },
  'service-unavailable': { status: HttpStatus.SERVICE_UNAVAILABLE, title: 'A dependency is unavailable; retry later' },
  internal: { status: HttpStatus.INTERNAL_SERVER_ERROR, title: 'Internal error' },
} as const;

export type ProblemType = keyof typeof PROBLEM_TYPES;

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemTypeUri(type: ProblemType): string {
  return `urn:digital-key-server:problem:${type}`;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

/** An error that becomes a problem+json response with a stable `type`. */
export class ProblemException extends HttpException {
  constructor(
    readonly problemType: ProblemType,
    detail?: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super({ problemType, detail, ...extensions }, PROBLEM_TYPES[problemType].status);
  }

  toDocument(instance?: string): ProblemDocument {
    const { status, title } = PROBLEM_TYPES[this.problemType];
    const detail = (this.getResponse() as { detail?: string }).detail;
    return {
      type: problemTypeUri(this.problemType),
      title,
      status,
      ...(detail ? { detail } : {}),
      ...(instance ? { instance } : {}),
      ...this.extensions,
    };
  }
}

export const notFound = (what: string) => new ProblemException('not-found', `${what} does not exist`);
