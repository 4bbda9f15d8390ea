import { describe, expect, it } from 'vitest';
import vectors from '../../test/fixtures/vectors/transaction-profile.json';
import { encodeResponseApdu, SW } from './apdu.js';
import { fromHex, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';
import { SecureChannel } from './secure-channel.js';
import { EXCHANGE_HEADER, type SessionKeys } from './transaction.js';

const std = vectors.standard;
const keys: SessionKeys = { kenc: fromHex(std.Kenc), kmac: fromHex(std.Kmac), krmac: fromHex(std.Krmac) };
const auth1Data = fromHex(std.AUTH1_response_data);
const exchangeApdu = fromHex(std.EXCHANGE_apdu);

function expectCode(run: () => unknown, code: ProtocolError['code']): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code).toBe(code);
}

/** Reader and device channels with the AUTH1 response (counter 0) already exchanged. */
function openedPair(): { reader: SecureChannel; device: SecureChannel } {
  const reader = SecureChannel.afterAuth1(keys, 'reader');
  const device = SecureChannel.afterAuth1(keys, 'device');
  reader.unwrapResponse(device.wrapResponse(fromHex(std.AUTH1_response_plaintext_prefix)));
  return { reader, device };
}

/** A device channel in the state the vector's EXCHANGE APDU expects (counter 1, MCV zero). */
function deviceAtCounter1(): SecureChannel {
  const device = SecureChannel.afterAuth1(keys, 'device');
  device.wrapResponse(Buffer.alloc(74));
  return device;
}

describe('SecureChannel (§4.5)', () => {
  it('carries commands and responses both ways, with chaining across several exchanges', () => {
    const { reader, device } = openedPair();
    for (let i = 0; i < 5; i++) {
      const command = Buffer.alloc(i * 7, i);
      const apdu = reader.wrapCommand(EXCHANGE_HEADER, command);
      expect(apdu[0]).toBe(0x84);
      expect(device.unwrapCommand(apdu, EXCHANGE_HEADER)).toEqual(command);
      expect(device.macChainingValue).toEqual(reader.macChainingValue);
      const response = Buffer.alloc(i * 11, 0xf0 + i);
      expect(reader.unwrapResponse(device.wrapResponse(response))).toEqual(response);
      expect(reader.counter).toBe(i + 2);
      expect(device.counter).toBe(i + 2);
    }
  });

  it('an empty payload has no ciphertext: a command is header + Lc + 8-byte MAC', () => {
    const { reader, device } = openedPair();
    const apdu = reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(0));
    expect(apdu).toHaveLength(5 + 8);
    expect(device.unwrapCommand(apdu)).toHaveLength(0);
    const response = device.wrapResponse(Buffer.alloc(0));
    expect(response).toHaveLength(8);
    expect(reader.unwrapResponse(response)).toHaveLength(0);
  });

  it('full response APDUs: 9000 is required, a bare error status ends the session', () => {
    const { reader, device } = openedPair();
    device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('x')));
    const response = device.wrapResponseApdu(Buffer.from('y'));
    expect(response.subarray(-2)).toEqual(fromHex('9000'));
    expect(reader.unwrapResponseApdu(response)).toEqual(Buffer.from('y'));

    device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('x')));
    expectCode(() => reader.unwrapResponseApdu(encodeResponseApdu(Buffer.alloc(0), SW.BAD_DATA)), 'bad-state');
    expect(reader.isOpen).toBe(false);
    expectCode(() => reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(0)), 'bad-state');
  });

  it('a fast channel starts with a command at counter 0', () => {
    const reader = SecureChannel.afterFast(keys, 'reader');
    const device = SecureChannel.afterFast(keys, 'device');
    expect(reader.counter).toBe(0);
    const apdu = reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('unlock'));
    expect(device.unwrapCommand(apdu)).toEqual(Buffer.from('unlock'));
    expect(reader.unwrapResponse(device.wrapResponse(Buffer.from('ok')))).toEqual(Buffer.from('ok'));
    expect(reader.counter).toBe(1);
  });

  it('a pairing channel (§3.4) opens with the first WRITE DATA of the car at counter 0', () => {
    const reader = SecureChannel.afterPairing(keys, 'reader');
    const device = SecureChannel.afterPairing(keys, 'device');
    expect(reader.counter).toBe(0);
    expectCode(() => device.wrapResponse(Buffer.alloc(0)), 'bad-state');
    const header = { ins: 0xd4, p1: 0, p2: 0 };
    expect(device.unwrapCommand(reader.wrapCommand(header, Buffer.from('DF01')), header)).toEqual(Buffer.from('DF01'));
    expect(reader.unwrapResponse(device.wrapResponse(Buffer.alloc(0)))).toHaveLength(0);
    expect([reader.counter, device.counter]).toEqual([1, 1]);
  });

  it('refuses messages out of order or from the wrong side without closing the channel', () => {
    const reader = SecureChannel.afterAuth1(keys, 'reader');
    expectCode(() => reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(1)), 'bad-state');
    expectCode(() => reader.wrapResponse(Buffer.alloc(1)), 'bad-state');
    expectCode(() => reader.unwrapCommand(exchangeApdu), 'bad-state');
    expect(reader.isOpen).toBe(true);
    expect(reader.unwrapResponse(auth1Data)).toHaveLength(74);
  });

  it('ends the session when the one-byte counter would wrap', () => {
    const reader = SecureChannel.afterFast(keys, 'reader');
    const device = SecureChannel.afterFast(keys, 'device');
    for (let i = 0; i <= 0xff; i++) {
      device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(0)));
      reader.unwrapResponse(device.wrapResponse(Buffer.alloc(0)));
    }
    expect(reader.counter).toBe(0x100);
    expectCode(() => reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(0)), 'bad-state');
    expect(reader.isOpen).toBe(false);
  });

  describe('integrity', () => {
    it('any single bit flip in the secured EXCHANGE APDU fails with bad-mac and closes the channel', () => {
      let cases = 0;
      for (let byte = 0; byte < exchangeApdu.length; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const device = deviceAtCounter1();
          const tampered = Buffer.from(exchangeApdu);
          tampered[byte] ^= 1 << bit;
          expectCode(() => device.unwrapCommand(tampered, EXCHANGE_HEADER), 'bad-mac');
          expect(device.isOpen).toBe(false);
          // The genuine APDU is refused afterwards, and so is anything else.
          expectCode(() => device.unwrapCommand(exchangeApdu, EXCHANGE_HEADER), 'bad-mac');
          expectCode(() => device.wrapResponse(Buffer.alloc(0)), 'bad-mac');
          cases++;
        }
      }
      expect(cases).toBe(exchangeApdu.length * 8);
      // Sanity: untampered, it is accepted.
      expect(toHex(deviceAtCounter1().unwrapCommand(exchangeApdu, EXCHANGE_HEADER))).toBe(std.EXCHANGE_plaintext_ctr1);
    });

    it('any single bit flip in the AUTH1 response data fails with bad-mac and closes the channel', () => {
      for (let byte = 0; byte < auth1Data.length; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const reader = SecureChannel.afterAuth1(keys, 'reader');
          const tampered = Buffer.from(auth1Data);
          tampered[byte] ^= 1 << bit;
          expectCode(() => reader.unwrapResponse(tampered), 'bad-mac');
          expectCode(() => reader.unwrapResponse(auth1Data), 'bad-mac');
          expectCode(() => reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(0)), 'bad-mac');
        }
      }
    });

    it('a flipped status word on a secured response is refused', () => {
      const { reader, device } = openedPair();
      device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.alloc(3)));
      const response = device.wrapResponseApdu(Buffer.alloc(3));
      response[response.length - 1] ^= 0x01;
      expectCode(() => reader.unwrapResponseApdu(response), 'bad-mac');
    });

    it('truncated, extended or reordered secured data fails with bad-mac', () => {
      expectCode(() => deviceAtCounter1().unwrapCommand(exchangeApdu.subarray(0, exchangeApdu.length - 1)), 'bad-mac');
      // One extra byte would parse as Le, which (like the header) is outside the MAC; two cannot.
      expectCode(() => deviceAtCounter1().unwrapCommand(Buffer.concat([exchangeApdu, fromHex('0000')])), 'bad-mac');
      expectCode(() => SecureChannel.afterAuth1(keys, 'reader').unwrapResponse(auth1Data.subarray(8)), 'bad-mac');
      expectCode(() => SecureChannel.afterAuth1(keys, 'reader').unwrapResponse(fromHex('0102')), 'bad-mac');
    });

    it('a replayed command fails once the counter and MCV have moved on', () => {
      const { reader, device } = openedPair();
      const first = reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('open'));
      device.unwrapCommand(first);
      reader.unwrapResponse(device.wrapResponse(Buffer.from('done')));
      expectCode(() => device.unwrapCommand(first), 'bad-mac');
      expectCode(() => device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('open'))), 'bad-mac');
    });

    it('a replayed response fails', () => {
      const { reader, device } = openedPair();
      device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('a')));
      const response = device.wrapResponse(Buffer.from('b'));
      reader.unwrapResponse(response);
      device.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, Buffer.from('a')));
      device.wrapResponse(Buffer.from('b'));
      expectCode(() => reader.unwrapResponse(response), 'bad-mac');
    });

    it('the AUTH1 response replayed into a later transaction (other keys) fails', () => {
      const otherKeys = { ...keys, krmac: Buffer.alloc(16, 9) };
      expectCode(() => SecureChannel.afterAuth1(otherKeys, 'reader').unwrapResponse(auth1Data), 'bad-mac');
    });
  });
});
