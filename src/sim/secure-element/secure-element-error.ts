/** Why a call on the software SE's management API (not an APDU) was refused. */
export type SecureElementErrorCode =
  'key-not-found' | 'key-terminated' | 'bad-argument' | 'bad-device-key' | 'sealed-state-rejected';

/** Management-API failures; APDUs never throw, they answer with a status word. */
export class SecureElementError extends Error {
  override readonly name = 'SecureElementError';

  constructor(
    readonly code: SecureElementErrorCode,
    message: string,
  ) {
    super(message);
  }
}
