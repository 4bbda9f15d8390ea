/** Reasons a protocol operation can fail; stable strings so callers can branch on them. */
export type ProtocolErrorCode =
  | 'truncated'
  | 'malformed'
  | 'length'
  | 'depth'
  | 'unexpected-tag'
  | 'bad-mac'
  | 'bad-signature'
  | 'bad-point'
  | 'bad-state'
  | 'unsupported'
  | 'missing-tag'
  | 'bad-crc'
  | 'bad-key'
  | 'out-of-range';

/** The one error type every parser and codec in `src/protocol` throws. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}
