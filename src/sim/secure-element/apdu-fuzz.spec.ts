import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SW } from '../../protocol/apdu.js';
import { EphemeralKeyPair } from '../../protocol/crypto/p256.js';
import {
  encodeAuth0Command,
  encodeAuth1Command,
  encodeSelectCommand,
  INS,
  type TransactionCode,
} from '../../protocol/transaction.js';
import { tap } from '../nfc/tap.js';
import { applyEdits, editArb, fuzzRuns, fuzzTimeoutMs } from '../../../test/support/property-testing.js';
import { ownerWithRecordedTaps } from '../../../test/support/recorded-taps.js';

const STATUS_WORDS = new Set<number>([
  SW.OK,
  SW.WRONG_SEQUENCE,
  SW.BAD_DATA,
  SW.NOT_FOUND,
  SW.WRONG_LENGTH,
  SW.BAD_INS,
  SW.BAD_CLA,
  // A mutated AID may select the framework applet, which answers 9484 without a pairing password.
  SW.PAIRING_NOT_READY,
]);
const RUNS = fuzzRuns(5_000);

describe('fuzzing the applet APDU handler', () => {
  it(
    `always answers a status word and never reveals a key identifier without a valid reader signature (${RUNS} runs)`,
    async () => {
      // Real traffic to mutate: a standard and a fast transaction, recorded on the air.
      const { car, se, key, standard, fast } = await ownerWithRecordedTaps(['door', 'unlock'], ['door', 'unlock']);
      const { keyIdentifier, endpointPublicKey } = key;
      expect([standard.transaction, fast.transaction]).toEqual(['standard', 'fast']);
      const recorded = [...standard.transcript, ...fast.transcript].map((entry) => entry.command);
      // Well-formed AUTH0s for this car (fresh ephemerals), so runs reach AUTH1 and EXCHANGE.
      const readerId = car.reader('door').readerId;
      const codes: TransactionCode[] = ['unlock', 'lock', 'engine-start', 'trunk'];
      const freshAuth0 = codes.flatMap((transactionCode) =>
        [true, false].map((requestFast) =>
          encodeAuth0Command({
            requestFast,
            transactionCode,
            selectedVersion: 0x0200,
            readerEphemeralPublicKey: EphemeralKeyPair.generate().publicPoint,
            transactionId: randomBytes(16),
            readerId,
          }),
        ),
      );
      const forgedAuth1 = encodeAuth1Command(randomBytes(64));
      const seeds = [...recorded, ...freshAuth0, forgedAuth1, encodeSelectCommand()];

      const header = fc.record({
        cla: fc.constantFrom(0x00, 0x80, 0x84, 0x90, 0xff),
        ins: fc.constantFrom(INS.SELECT, INS.AUTH0, INS.AUTH1, INS.EXCHANGE, INS.CONTROL_FLOW, 0x00, 0xc0),
        p1: fc.integer({ min: 0, max: 255 }),
        p2: fc.integer({ min: 0, max: 255 }),
        body: fc.uint8Array({ maxLength: 270 }),
      });
      const apdu: fc.Arbitrary<Buffer> = fc.oneof(
        fc.constantFrom(...seeds),
        fc
          .tuple(fc.constantFrom(...seeds), fc.array(editArb, { minLength: 1, maxLength: 3 }))
          .map(([base, m]) => applyEdits(base, m)),
        fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
        header.map(({ cla, ins, p1, p2, body }) => Buffer.concat([Buffer.from([cla, ins, p1, p2]), body])),
      );
      const start = fc.constantFrom<Buffer[]>([], [encodeSelectCommand()], [encodeSelectCommand(), freshAuth0[0]]);

      const forbidden = [keyIdentifier, endpointPublicKey.subarray(1, 33)];
      fc.assert(
        fc.property(start, fc.array(apdu, { minLength: 1, maxLength: 6 }), (prefix, commands) => {
          se.pollingFrame(car.reader('door').pollingFrame);
          for (const command of [...prefix, ...commands]) {
            // Plain checks: `expect` per APDU would dominate the run time.
            const response = se.transmit(command); // throwing fails the property
            if (response.length < 2) throw new Error('response without a status word');
            const status = response.readUInt16BE(response.length - 2);
            if (!STATUS_WORDS.has(status)) throw new Error(`unexpected status ${status.toString(16)}`);
            // No command here carries a valid reader signature for the live session, so AUTH1
            // never succeeds, and nothing identifying ever leaves the applet.
            if (command.length >= 2 && command[1] === INS.AUTH1 && status === SW.OK) throw new Error('AUTH1 accepted');
            if (forbidden.some((secret) => response.includes(secret))) throw new Error('identifier revealed');
          }
        }),
        { numRuns: RUNS },
      );
      // The applet is still healthy afterwards.
      expect((await tap(se, car, 'door', 'unlock')).result).toBe('granted');
    },
    fuzzTimeoutMs(RUNS, 0.4),
  );
});
