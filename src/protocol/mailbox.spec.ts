import { describe, expect, it } from 'vitest';
import vectors from '../../test/fixtures/vectors/transaction-profile.json';
import { fromHex, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';
import {
  applyMailboxOperations,
  decodeAttestationSlot,
  decodeKeyListVersion,
  decodeRevocationRelay,
  encodeAttestationSlot,
  encodeKeyListVersion,
  encodeMailboxRequest,
  encodeMailboxResponse,
  encodeRevocationRelay,
  parseMailboxRequest,
  parseMailboxResponse,
  PRIVATE_MAILBOX_LAYOUT,
  PRIVATE_MAILBOX_SIZE,
  processMailboxExchange,
  type MailboxRequest,
} from './mailbox.js';

describe('EXCHANGE grammar (§4.7)', () => {
  const request: MailboxRequest = {
    operations: [
      { kind: 'read', offset: 0x0000, length: 8 },
      { kind: 'write', offset: 0x0040, data: fromHex('cafe') },
      { kind: 'fill', offset: 0x0010, length: 4, value: 0xee },
    ],
    more: false,
  };

  it('encodes each operation as a TLV inside BA, ending with 8C', () => {
    expect(toHex(encodeMailboxRequest(request))).toBe(
      'ba16' + '870400000008' + '8a040040cafe' + '950500100004ee' + '8c0100',
    );
    expect(parseMailboxRequest(encodeMailboxRequest(request))).toEqual(request);
    expect(parseMailboxRequest(encodeMailboxRequest({ operations: [], more: true }))).toEqual({
      operations: [],
      more: true,
    });
  });

  it('accepts a missing 8C (last) but rejects 8C before other operations and unknown tags', () => {
    expect(parseMailboxRequest(fromHex('ba06870400000008'))).toEqual({
      operations: [{ kind: 'read', offset: 0, length: 8 }],
      more: false,
    });
    expect(() => parseMailboxRequest(fromHex('ba098c0100870400000008'))).toThrow(ProtocolError);
    expect(() => parseMailboxRequest(fromHex('ba03990100'))).toThrow(ProtocolError);
    expect(() => parseMailboxRequest(fromHex('ba038c0102'))).toThrow(ProtocolError);
    expect(() => parseMailboxRequest(fromHex('87040000000a'))).toThrow(ProtocolError);
  });

  it('the EXCHANGE vector payload is a raw payload, not a BA request: it is answered as malformed', () => {
    const payload = fromHex(vectors.standard.EXCHANGE_plaintext_ctr1);
    // 00 ‖ TLV(8E, TLV(C0, 32 bytes)): no BA container.
    expect(() => parseMailboxRequest(payload)).toThrow(ProtocolError);
    const result = processMailboxExchange(Buffer.alloc(PRIVATE_MAILBOX_SIZE), payload);
    expect(result.status).toBe('malformed');
    expect(toHex(result.response)).toBe('00020002');
  });

  it('encodes responses as len(2) data per read, then 00 02 status(2)', () => {
    const response = { reads: [fromHex('0102'), fromHex('')], status: 'ok' as const };
    const encoded = encodeMailboxResponse(response);
    expect(toHex(encoded)).toBe('00020102' + '0000' + '00020000');
    expect(parseMailboxResponse(encoded)).toEqual(response);
    expect(parseMailboxResponse(fromHex('00020001'))).toEqual({ reads: [], status: 'out-of-bounds' });
    expect(() => parseMailboxResponse(fromHex('00020009'))).toThrow(ProtocolError);
    expect(() => parseMailboxResponse(fromHex('000301'))).toThrow(ProtocolError);
  });
});

describe('applyMailboxOperations', () => {
  const mailbox = Buffer.alloc(PRIVATE_MAILBOX_SIZE);

  it('applies in order, reads see earlier writes, the input is untouched', () => {
    const result = applyMailboxOperations(mailbox, [
      { kind: 'write', offset: 10, data: fromHex('aabb') },
      { kind: 'fill', offset: 12, length: 2, value: 0x11 },
      { kind: 'read', offset: 9, length: 6 },
    ]);
    expect(result.status).toBe('ok');
    expect(toHex(result.reads[0])).toBe('00aabb111100');
    expect(mailbox.every((b) => b === 0)).toBe(true);
    expect(result.mailbox).not.toBe(mailbox);
  });

  it('returns the same buffer when nothing is written', () => {
    const result = applyMailboxOperations(mailbox, [{ kind: 'read', offset: 0, length: 256 }]);
    expect(result.mailbox).toBe(mailbox);
    expect(result.reads[0]).toHaveLength(256);
  });

  it('is all or nothing when an operation is out of bounds', () => {
    const result = applyMailboxOperations(mailbox, [
      { kind: 'write', offset: 0, data: fromHex('01') },
      { kind: 'read', offset: 250, length: 7 },
    ]);
    expect(result).toEqual({ mailbox, reads: [], status: 'out-of-bounds' });
    expect(applyMailboxOperations(mailbox, [{ kind: 'write', offset: 255, data: fromHex('0102') }]).status).toBe(
      'out-of-bounds',
    );
    expect(applyMailboxOperations(mailbox, [{ kind: 'fill', offset: 256, length: 0, value: 0 }]).status).toBe('ok');
  });

  it('processes a whole EXCHANGE payload', () => {
    const payload = encodeMailboxRequest({
      operations: [
        { kind: 'write', offset: 0, data: encodeKeyListVersion(7n) },
        { kind: 'read', offset: 0, length: 8 },
      ],
      more: false,
    });
    const result = processMailboxExchange(mailbox, payload);
    expect(toHex(result.response)).toBe('0008' + '0000000000000007' + '00020000');
    expect(decodeKeyListVersion(result.mailbox.subarray(0, 8))).toBe(7n);
  });
});

describe('private mailbox fields', () => {
  it('layout fits the 256-byte mailbox without overlaps', () => {
    const { keyListVersion, revocationRelay, attestation } = PRIVATE_MAILBOX_LAYOUT;
    expect(keyListVersion.offset + keyListVersion.length).toBeLessThanOrEqual(revocationRelay.offset);
    expect(revocationRelay.offset + revocationRelay.length).toBeLessThanOrEqual(attestation.offset);
    expect(attestation.offset + attestation.length).toBe(PRIVATE_MAILBOX_SIZE);
  });

  it('revocation relay: count + up to 6 key ids, zero-filled', () => {
    const ids = [fromHex('0102030405060708'), fromHex('1112131415161718')];
    const encoded = encodeRevocationRelay(ids);
    expect(encoded).toHaveLength(49);
    expect(toHex(encoded.subarray(0, 17))).toBe('02' + '0102030405060708' + '1112131415161718');
    expect(decodeRevocationRelay(encoded)).toEqual(ids);
    expect(decodeRevocationRelay(encoded.subarray(0, 17))).toEqual(ids);
    expect(() => encodeRevocationRelay(Array.from({ length: 7 }, () => Buffer.alloc(8)))).toThrow(ProtocolError);
    expect(() => encodeRevocationRelay([Buffer.alloc(6)])).toThrow(ProtocolError);
    expect(() => decodeRevocationRelay(fromHex('07'))).toThrow(ProtocolError);
    expect(() => decodeRevocationRelay(fromHex('02' + '00'.repeat(8)))).toThrow(ProtocolError);
  });

  it('attestation slot: len(2) ‖ blob', () => {
    const slot = encodeAttestationSlot(fromHex('3045'));
    expect(slot).toHaveLength(PRIVATE_MAILBOX_LAYOUT.attestation.length);
    expect(decodeAttestationSlot(slot)).toEqual(fromHex('3045'));
    expect(decodeAttestationSlot(Buffer.alloc(192))).toBeUndefined();
    expect(() => encodeAttestationSlot(Buffer.alloc(191))).toThrow(ProtocolError);
  });

  it('key-list version is 8 bytes big-endian', () => {
    expect(toHex(encodeKeyListVersion(0x0102n))).toBe('0000000000000102');
    expect(() => encodeKeyListVersion(-1n)).toThrow(ProtocolError);
    expect(() => decodeKeyListVersion(fromHex('01'))).toThrow(ProtocolError);
  });
});
