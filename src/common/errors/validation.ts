import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { ProblemException } from './problem.js';

function flatten(errors: ValidationError[], path = ''): Array<{ field: string; problems: string[] }> {
  return errors.flatMap((error) => {
    const field = path ? `${path}.${error.property}` : error.property;
    const own = error.constraints ? [{ field, problems: Object.values(error.constraints) }] : [];
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/** Validates bodies, queries and params; unknown fields are rejected, not silently dropped. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) => {
      const invalid = flatten(errors);
      const detail = invalid.map((entry) => `${entry.field}: ${entry.problems.join(', ')}`).join('; ');
      return new ProblemException('validation-failed', detail, { errors: invalid });
    },
  });
}
