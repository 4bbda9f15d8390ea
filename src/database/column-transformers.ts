import type { ValueTransformer } from 'typeorm';

/**
 * `pg` returns BIGINT as a string; counters here (sequence numbers, versions) stay far below
 * 2^53, so they are numbers in code.
 */
export const bigintColumn: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | null) => (value === null ? null : Number(value)),
};
