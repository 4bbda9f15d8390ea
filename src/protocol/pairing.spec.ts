import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCommandApdu } from './apdu.js';
import { fromHex, u16 } from './bytes.js';
import { ProtocolError } from './errors.js';
import {
  decodeKeyCreationOptions,
  encodeEndpointChain,
  encodeFrameworkSelectResponse,
  encodeGetResponseCommand,
  encodeKeyCreationOptions,
  encodePairingData,
  encodeSpake2RequestCommand,
  encodeSpake2RequestResponse,
  encodeSpake2VerifyCommand,
  encodeSpake2VerifyResponse,
  MAX_PAIRING_DATA_LENGTH,
  MAX_WRITE_DATA_BLOCK,
  parseEndpointChain,
  parseFrameworkSelectResponse,
  parsePairingDataStream,
  parseSpake2RequestCommand,
  parseSpake2RequestResponse,
  parseSpake2VerifyCommand,
  parseSpake2VerifyResponse,
  splitWriteDataBlocks,
  WRITE_DATA_HEADER,
  type PairingData,
} from './pairing.js';
import { SecureChannel } from './secure-channel.js';
import { TLV } from './tlv.js';

const point = (fill: number): Buffer => Buffer.concat([Buffer.from([0x04]), Buffer.alloc(64, fill)]);

/** Only ProtocolError may escape a parser of untrusted bytes. */
function onlyProtocolErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
}

const data: PairingData = {
  vehicleCertificate: Buffer.alloc(540, 0x30),
  vehicleOemRoot: Buffer.alloc(470, 0x31),
  vehicleIdentifier: fromHex('0102030405060708'),
  options: { privateMailboxSize: 256, confidentialMailboxSize: 128, entitlements: fromHex('01013f') },
};

describe('framework applet codecs (§3.2)', () => {
  it('SELECT response: 5A, 5C, D4, and the 5C bytes kept as sent', () => {
    const encoded = encodeFrameworkSelectResponse({
      spake2Versions: [0x0100],
      appletVersions: [0x0200, 0x0100],
      pairingState: 'ready',
    });
    expect(encoded.toString('hex')).toBe('5a0201005c0402000100d40102');
    expect(parseFrameworkSelectResponse(encoded)).toEqual({
      spake2Versions: [0x0100],
      appletVersions: [0x0200, 0x0100],
      appletVersionsBytes: fromHex('02000100'),
      pairingState: 'ready',
    });
    expect(() => parseFrameworkSelectResponse(fromHex('5a0201005c0402000100d40101'))).toThrow(ProtocolError);
  });

  it('SPAKE2+ REQUEST: 5B, 5C, 7F50{C0 C1 C2 C3}, D6, with N in 4 bytes and r, p in 2', () => {
    const request = {
      selectedVersion: u16(0x0100),
      appletVersions: fromHex('02000100'),
      salt: Buffer.alloc(16, 0xaa),
      scrypt: { N: 32768, r: 8, p: 1 },
      brand: u16(0x00d4),
    };
    const apdu = encodeSpake2RequestCommand(request);
    expect(apdu.subarray(0, 4).toString('hex')).toBe('80300000');
    const command = parseCommandApdu(apdu);
    expect(command.data.toString('hex')).toBe(
      `5b0201005c0402000100` + `7f5020c010${'aa'.repeat(16)}c10400008000c2020008c3020001` + `d60200d4`,
    );
    expect(parseSpake2RequestCommand(apdu)).toEqual(request);
    expect(parseSpake2RequestResponse(encodeSpake2RequestResponse(point(1)))).toEqual(point(1));
  });

  it('SPAKE2+ VERIFY: 52 Y, 57 M1 → 58 M2', () => {
    const verify = { Y: point(2), M1: Buffer.alloc(16, 3) };
    const apdu = encodeSpake2VerifyCommand(verify);
    expect(apdu.subarray(0, 4).toString('hex')).toBe('80320000');
    expect(parseSpake2VerifyCommand(apdu)).toEqual(verify);
    expect(parseSpake2VerifyResponse(encodeSpake2VerifyResponse(Buffer.alloc(16, 4)))).toEqual(Buffer.alloc(16, 4));
    expect(() => parseSpake2VerifyResponse(TLV(0x58, Buffer.alloc(15)))).toThrow(ProtocolError);
  });

  it('refuses wrong headers, missing and unknown tags', () => {
    const request = parseCommandApdu(
      encodeSpake2RequestCommand({
        selectedVersion: u16(0x0100),
        appletVersions: fromHex('0100'),
        salt: Buffer.alloc(16),
        scrypt: { N: 4096, r: 8, p: 1 },
        brand: u16(1),
      }),
    );
    expect(() => parseSpake2RequestCommand({ ...request, p1: 1 })).toThrow(ProtocolError);
    expect(() => parseSpake2RequestCommand({ ...request, data: request.data.subarray(0, 10) })).toThrow(ProtocolError);
    expect(() =>
      parseSpake2RequestCommand({ ...request, data: Buffer.concat([request.data, fromHex('0100')]) }),
    ).toThrow(ProtocolError);
    expect(() => parseSpake2VerifyCommand({ ...request, ins: 0x32, data: TLV(0x52, point(1)) })).toThrow(/57/);
  });
});

describe('key-creation data and certificate chain (§3.4)', () => {
  it('DF04: mailbox sizes and the entitlements TLV', () => {
    const encoded = encodeKeyCreationOptions(data.options);
    expect(encoded.toString('hex')).toBe('0100008001013f');
    expect(decodeKeyCreationOptions(encoded)).toEqual(data.options);
    expect(() => decodeKeyCreationOptions(fromHex('ffff0000'))).toThrow(ProtocolError);
  });

  it('cuts the stream into blocks that fit a short secured APDU; only the last closes it with 55 00', () => {
    const stream = encodePairingData(data);
    expect(stream.subarray(-2).toString('hex')).toBe('5500');
    const blocks = splitWriteDataBlocks(stream);
    expect(blocks.length).toBe(Math.ceil(stream.length / MAX_WRITE_DATA_BLOCK));
    const keys = { kenc: Buffer.alloc(16, 1), kmac: Buffer.alloc(16, 2), krmac: Buffer.alloc(16, 3) };
    const reader = SecureChannel.afterPairing(keys, 'reader');
    const device = SecureChannel.afterPairing(keys, 'device');
    let received = Buffer.alloc(0);
    blocks.forEach((block, i) => {
      const apdu = reader.wrapCommand(WRITE_DATA_HEADER, block);
      expect(parseCommandApdu(apdu).extended).toBe(false);
      received = Buffer.concat([received, device.unwrapCommand(apdu, WRITE_DATA_HEADER)]);
      reader.unwrapResponse(device.wrapResponse(Buffer.alloc(0)));
      const progress = parsePairingDataStream(received);
      expect(progress.complete).toBe(i === blocks.length - 1);
      if (progress.complete) expect(progress.data).toEqual(data);
    });
  });

  it('refuses a stream with 55 before the end, a 55 with a value, unknown or repeated tags, or too long', () => {
    const stream = encodePairingData(data);
    const body = stream.subarray(0, -2);
    expect(() => parsePairingDataStream(Buffer.concat([fromHex('5500'), body]))).toThrow(/close/);
    expect(() => parsePairingDataStream(Buffer.concat([body, fromHex('550100')]))).toThrow(ProtocolError);
    expect(() => parsePairingDataStream(Buffer.concat([body, fromHex('df050100'), fromHex('5500')]))).toThrow(/DF05/);
    expect(() => parsePairingDataStream(Buffer.concat([body, TLV(0xdf03, Buffer.alloc(8)), fromHex('5500')]))).toThrow(
      /more than once/,
    );
    expect(() => parsePairingDataStream(Buffer.alloc(MAX_PAIRING_DATA_LENGTH + 1))).toThrow(/too long/);
    expect(parsePairingDataStream(body)).toEqual({ complete: false });
  });

  it('GET DATA: DF10 DF11 DF12, and GET RESPONSE asks for what 61xx announced', () => {
    const chain = [Buffer.alloc(520, 1), Buffer.alloc(480, 2), Buffer.alloc(470, 3)] as const;
    expect(parseEndpointChain(encodeEndpointChain(chain))).toEqual(chain);
    expect(() => parseEndpointChain(TLV(0xdf10, chain[0]))).toThrow(/DF11/);
    expect(encodeGetResponseCommand(0x6100).toString('hex')).toBe('00c0000000');
    expect(encodeGetResponseCommand(0x6130).toString('hex')).toBe('00c0000030');
  });
});

describe('pairing codecs under arbitrary input (fast-check)', () => {
  const bytes = fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b));

  it('parsers of untrusted bytes only ever throw ProtocolError', () => {
    fc.assert(
      fc.property(bytes, (input) => {
        onlyProtocolErrors(() => parseFrameworkSelectResponse(input));
        onlyProtocolErrors(() => parseSpake2RequestResponse(input));
        onlyProtocolErrors(() => parseSpake2VerifyResponse(input));
        onlyProtocolErrors(() => parsePairingDataStream(input));
        onlyProtocolErrors(() => parseEndpointChain(input));
        onlyProtocolErrors(() => decodeKeyCreationOptions(input));
        onlyProtocolErrors(() =>
          parseSpake2RequestCommand(Buffer.concat([fromHex('80300000'), u8(input.length), input])),
        );
        onlyProtocolErrors(() =>
          parseSpake2VerifyCommand(Buffer.concat([fromHex('80320000'), u8(input.length), input])),
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('SPAKE2+ REQUEST round-trips any well-formed fields', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 2, maxLength: 2 }),
        fc.integer({ min: 1, max: 20 }).chain((n) => fc.uint8Array({ minLength: 2 * n, maxLength: 2 * n })),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.record({ N: fc.nat(0xffff_ffff), r: fc.nat(0xffff), p: fc.nat(0xffff) }),
        fc.uint8Array({ minLength: 2, maxLength: 2 }),
        (selectedVersion, appletVersions, salt, scrypt, brand) => {
          const request = {
            selectedVersion: Buffer.from(selectedVersion),
            appletVersions: Buffer.from(appletVersions),
            salt: Buffer.from(salt),
            scrypt,
            brand: Buffer.from(brand),
          };
          expect(parseSpake2RequestCommand(encodeSpake2RequestCommand(request))).toEqual(request);
        },
      ),
    );
  });

  it('any cut of the stream reassembles to the same data, and no strict prefix is complete', () => {
    const stream = encodePairingData(data);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_WRITE_DATA_BLOCK }), (blockSize) => {
        const blocks = splitWriteDataBlocks(stream, blockSize);
        let received = Buffer.alloc(0);
        for (const [i, block] of blocks.entries()) {
          received = Buffer.concat([received, block]);
          const progress = parsePairingDataStream(received);
          if (progress.complete !== (i === blocks.length - 1)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});

function u8(value: number): Buffer {
  return Buffer.from([Math.min(value, 255)]);
}
