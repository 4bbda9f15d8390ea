import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyMailboxOperations,
  decodeAttestationSlot,
  decodeRevocationRelay,
  encodeAttestationSlot,
  encodeMailboxRequest,
  encodeMailboxResponse,
  encodeRevocationRelay,
  parseMailboxRequest,
  parseMailboxResponse,
  processMailboxExchange,
  type MailboxOperation,
  type MailboxRequest,
  type MailboxResponse,
} from './mailbox.js';
import { SecureChannel } from './secure-channel.js';
import {
  encodeAuth0Command,
  encodeAuth0Response,
  encodeAuth1Command,
  encodeAuth1Response,
  encodeControlFlowCommand,
  encodeSelectResponse,
  EXCHANGE_HEADER,
  parseAuth0Command,
  parseAuth0Response,
  parseAuth1Command,
  parseAuth1Response,
  parseControlFlowCommand,
  parseSelectResponse,
  type Auth0Command,
  type Auth1Response,
  type ControlFlowReason,
  type TransactionCode,
} from './transaction.js';
import {
  RUNS,
  outcome,
  same,
  mutated,
  record,
  bytes,
  fixedBytes,
  byte,
  pointArb,
  fuzzParser,
} from '../../test/support/property-testing.js';

/**
 * Property tests of the transaction messages, the secure channel and the mailboxes (STYLE.md:
 * "Property tests for every parser"):
 * random bytes and mutated valid encodings only ever raise ProtocolError, valid values
 * round-trip, and no parser reads past the end of its input view.
 */
// ---- transaction messages --------------------------------------------------------------------

const transactionCodeArb = fc.constantFrom<TransactionCode>('unlock', 'lock', 'engine-start', 'trunk');
const auth0Arb: fc.Arbitrary<Auth0Command> = record({
  requestFast: fc.boolean(),
  transactionCode: transactionCodeArb,
  selectedVersion: fc.integer({ min: 0, max: 0xffff }),
  readerEphemeralPublicKey: pointArb,
  transactionId: fixedBytes(16),
  readerId: fixedBytes(16),
});
const auth0ResponseArb = fc
  .record({ endpointEphemeralPublicKey: pointArb, cryptogram: fc.option(fixedBytes(16), { nil: undefined }) })
  .map(({ cryptogram, ...rest }) => (cryptogram ? { ...rest, cryptogram } : rest));
const auth1ResponseArb: fc.Arbitrary<Auth1Response> = fc
  .record({
    keyIdentifier: fc.oneof(fixedBytes(6), fixedBytes(8)),
    deviceSignature: fixedBytes(64),
    confidentialMailbox: fc.option(bytes(128), { nil: undefined }),
    privateMailbox: fc.option(bytes(256), { nil: undefined }),
  })
  .map(({ confidentialMailbox, privateMailbox, ...rest }) => ({
    ...rest,
    ...(confidentialMailbox ? { confidentialMailbox } : {}),
    ...(privateMailbox ? { privateMailbox } : {}),
  }));
const controlFlowArb = record({
  success: fc.boolean(),
  reason: fc.constantFrom<ControlFlowReason>(
    'none',
    'key-unknown',
    'key-suspended-or-revoked',
    'entitlement-denied',
    'invalid-point',
    'attempts-exhausted',
  ),
});
const versionsArb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 6 });

describe('transaction messages', () => {
  it('AUTH0 command round-trips', () => {
    fc.assert(
      fc.property(auth0Arb, (command) => {
        same(parseAuth0Command(encodeAuth0Command(command)), command);
      }),
      RUNS,
    );
  });
  fuzzParser('parseAuth0Command', (b) => parseAuth0Command(b), auth0Arb.map(encodeAuth0Command), 140);

  it('AUTH0 response round-trips', () => {
    fc.assert(
      fc.property(auth0ResponseArb, (r) => {
        same(parseAuth0Response(encodeAuth0Response(r)), r);
      }),
      RUNS,
    );
  });
  fuzzParser('parseAuth0Response', parseAuth0Response, auth0ResponseArb.map(encodeAuth0Response), 100);

  it('AUTH1 command round-trips', () => {
    fc.assert(
      fc.property(fixedBytes(64), (sig) => {
        same(parseAuth1Command(encodeAuth1Command(sig)), sig);
      }),
      RUNS,
    );
  });
  fuzzParser('parseAuth1Command', (b) => parseAuth1Command(b), fixedBytes(64).map(encodeAuth1Command), 80);

  it('AUTH1 response round-trips', () => {
    fc.assert(
      fc.property(auth1ResponseArb, (r) => {
        same(parseAuth1Response(encodeAuth1Response(r)), r);
      }),
      RUNS,
    );
  });
  fuzzParser('parseAuth1Response', (b) => parseAuth1Response(b), auth1ResponseArb.map(encodeAuth1Response));

  it('SELECT response round-trips', () => {
    fc.assert(
      fc.property(versionsArb, (v) => {
        same(parseSelectResponse(encodeSelectResponse(v)), v);
      }),
      RUNS,
    );
  });
  fuzzParser('parseSelectResponse', parseSelectResponse, versionsArb.map(encodeSelectResponse), 20);

  it('CONTROL FLOW round-trips', () => {
    fc.assert(
      fc.property(controlFlowArb, (c) => {
        same(parseControlFlowCommand(encodeControlFlowCommand(c)), c);
      }),
      RUNS,
    );
  });
  fuzzParser(
    'parseControlFlowCommand',
    (b) => parseControlFlowCommand(b),
    controlFlowArb.map(encodeControlFlowCommand),
    8,
  );
});

// ---- secure channel ---------------------------------------------------------------------------

const keysArb = record({ kenc: fixedBytes(16), kmac: fixedBytes(16), krmac: fixedBytes(16) });

describe('secure channel', () => {
  it('wrap → unwrap round-trips commands and responses for random keys and payloads', () => {
    fc.assert(
      fc.property(keysArb, bytes(200), bytes(200), (keys, command, response) => {
        const reader = SecureChannel.afterFast(keys, 'reader');
        const device = SecureChannel.afterFast(keys, 'device');
        same(device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, command), EXCHANGE_HEADER), command);
        same(reader.unwrapResponse(device.wrapResponse(response)), response);
      }),
      RUNS,
    );
  });

  it('random or mutated secured commands raise only ProtocolError, and any failure closes the channel', () => {
    const keys = { kenc: Buffer.alloc(16, 1), kmac: Buffer.alloc(16, 2), krmac: Buffer.alloc(16, 3) };
    const valid = bytes(60).map((payload) =>
      SecureChannel.afterFast(keys, 'reader').wrapCommand(EXCHANGE_HEADER, payload),
    );
    fc.assert(
      fc.property(fc.oneof(bytes(80), mutated(valid)), (input) => {
        const device = SecureChannel.afterFast(keys, 'device');
        const result = outcome(() => device.unwrapCommand(input, EXCHANGE_HEADER));
        if ('error' in result) {
          expect(device.isOpen).toBe(false);
          same(
            outcome(() => device.wrapResponse(Buffer.alloc(0))),
            result,
          );
        }
      }),
      RUNS,
    );
  });

  it('random secured responses raise only ProtocolError (bad-mac)', () => {
    const keys = { kenc: Buffer.alloc(16, 1), kmac: Buffer.alloc(16, 2), krmac: Buffer.alloc(16, 3) };
    fc.assert(
      fc.property(bytes(80), (input) => {
        const reader = SecureChannel.afterAuth1(keys, 'reader');
        same(
          outcome(() => reader.unwrapResponse(input)),
          { error: 'bad-mac' },
        );
      }),
      RUNS,
    );
  });
});

// ---- mailbox ----------------------------------------------------------------------------------

const offset = fc.integer({ min: 0, max: 300 });
const operationArb: fc.Arbitrary<MailboxOperation> = fc.oneof(
  record({ kind: fc.constant('read' as const), offset, length: fc.integer({ min: 0, max: 300 }) }),
  record({ kind: fc.constant('write' as const), offset, data: bytes(40) }),
  record({ kind: fc.constant('fill' as const), offset, length: fc.integer({ min: 0, max: 300 }), value: byte }),
);
const requestArb: fc.Arbitrary<MailboxRequest> = record({
  operations: fc.array(operationArb, { maxLength: 6 }),
  more: fc.boolean(),
});
const responseArb: fc.Arbitrary<MailboxResponse> = record({
  reads: fc.array(bytes(40), { maxLength: 5 }),
  status: fc.constantFrom('ok' as const, 'out-of-bounds' as const, 'malformed' as const),
});

/** A naive model of the mailbox semantics, to check the real implementation against. */
function modelApply(mailbox: Buffer, operations: readonly MailboxOperation[]) {
  const span = (op: MailboxOperation): number => (op.kind === 'write' ? op.data.length : op.length);
  if (operations.some((op) => op.offset + span(op) > mailbox.length)) {
    return { mailbox, reads: [] as Buffer[], status: 'out-of-bounds' };
  }
  const state = Buffer.from(mailbox);
  const reads: Buffer[] = [];
  for (const op of operations) {
    if (op.kind === 'read') reads.push(Buffer.from(state.subarray(op.offset, op.offset + op.length)));
    else for (let i = 0; i < span(op); i++) state[op.offset + i] = op.kind === 'write' ? op.data[i] : op.value;
  }
  return { mailbox: state, reads, status: 'ok' };
}

describe('mailbox', () => {
  it('request encode → parse round-trips', () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        same(parseMailboxRequest(encodeMailboxRequest(r)), r);
      }),
      RUNS,
    );
  });
  fuzzParser('parseMailboxRequest', parseMailboxRequest, requestArb.map(encodeMailboxRequest));

  it('response encode → parse round-trips', () => {
    fc.assert(
      fc.property(responseArb, (r) => {
        same(parseMailboxResponse(encodeMailboxResponse(r)), r);
      }),
      RUNS,
    );
  });
  fuzzParser('parseMailboxResponse', parseMailboxResponse, responseArb.map(encodeMailboxResponse));

  it('applyMailboxOperations matches a naive model and never changes its input', () => {
    fc.assert(
      fc.property(fc.constantFrom(128, 256), fc.array(operationArb, { maxLength: 6 }), (size, operations) => {
        const mailbox = Buffer.alloc(size, 0x5a);
        const result = applyMailboxOperations(mailbox, operations);
        same(result, modelApply(Buffer.alloc(size, 0x5a), operations));
        expect(mailbox.every((b) => b === 0x5a)).toBe(true);
      }),
      RUNS,
    );
  });

  it('processMailboxExchange answers every payload with a parseable response', () => {
    fc.assert(
      fc.property(fc.oneof(bytes(80), mutated(requestArb.map(encodeMailboxRequest))), (payload) => {
        const result = processMailboxExchange(Buffer.alloc(256), payload);
        expect(parseMailboxResponse(result.response).status).toBe(result.status);
      }),
      RUNS,
    );
  });

  const relayArb = fc.array(fixedBytes(8), { maxLength: 6 });
  it('revocation relay round-trips', () => {
    fc.assert(
      fc.property(relayArb, (ids) => {
        same(decodeRevocationRelay(encodeRevocationRelay(ids)), ids);
      }),
      RUNS,
    );
  });
  fuzzParser('decodeRevocationRelay', decodeRevocationRelay, relayArb.map(encodeRevocationRelay), 60);

  const slotArb = bytes(190).filter((b) => b.length > 0);
  it('attestation slot round-trips', () => {
    fc.assert(
      fc.property(slotArb, (blob) => {
        same(decodeAttestationSlot(encodeAttestationSlot(blob)), blob);
      }),
      RUNS,
    );
  });
  fuzzParser('decodeAttestationSlot', decodeAttestationSlot, slotArb.map(encodeAttestationSlot), 200);
});
