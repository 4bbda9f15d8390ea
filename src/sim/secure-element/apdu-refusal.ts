import { SW } from '../../protocol/apdu.js';
import { ProtocolError } from '../../protocol/errors.js';

/** ISO/IEC 7816-4 "no precise diagnosis": an internal fault, still answered with a status word. */
export const SW_NO_PRECISE_DIAGNOSIS = 0x6f00;

/** An applet's explicit refusal with its status word (PROTOCOL.md §3.2). */
export class ApduRefusal extends Error {
  override readonly name = 'ApduRefusal';

  constructor(readonly sw: number) {
    super(`refused with ${sw.toString(16)}`);
  }
}

/** Status word for anything an APDU handler threw: refusals keep theirs, bad input is 6A80. */
export function statusWordFor(error: unknown): number {
  if (error instanceof ApduRefusal) return error.sw;
  if (error instanceof ProtocolError) return SW.BAD_DATA;
  return SW_NO_PRECISE_DIAGNOSIS;
}
