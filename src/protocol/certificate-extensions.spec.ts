import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CERTIFICATE_EXTENSION_OIDS,
  encodeOidContents,
  readCertificateExtensions,
  readEndpointCertificateFields,
} from './certificate-extensions.js';
import { ProtocolError } from './errors.js';
import { TLV } from './tlv.js';
import { RUNS, bytes, mutated } from '../../test/support/property-testing.js';

/** A minimal certificate skeleton: SEQ { TBS { [0] version, [3] { SEQ { extensions } } }, alg, sig }. */
function certificateWith(extensions: Buffer[]): Buffer {
  const tbs = TLV(0x30, TLV(0xa0, TLV(0x02, Buffer.from([2]))), TLV(0xa3, TLV(0x30, ...extensions)));
  return TLV(0x30, tbs, TLV(0x30, TLV(0x06, Buffer.from('2a8648ce3d040302', 'hex'))), TLV(0x03, Buffer.from([0])));
}

const extension = (oid: string, value: Buffer, critical = false) =>
  TLV(0x30, TLV(0x06, encodeOidContents(oid)), ...(critical ? [TLV(0x01, Buffer.from([0xff]))] : []), TLV(0x04, value));

describe('certificate extensions (PROTOCOL.md §2)', () => {
  it('encodes the 128-bit UUID arc in base 128', () => {
    expect(encodeOidContents('2.25.164986476451394641354628871324004387351.1').toString('hex')).toBe(
      '6981f89f9ed4d3a4f2ae9db6d0cbebc8ecf8941701',
    );
    expect(encodeOidContents('1.2.840.10045.4.3.2').toString('hex')).toBe('2a8648ce3d040302');
  });

  it('reads the private endpoint fields', () => {
    const der = certificateWith([
      extension(CERTIFICATE_EXTENSION_OIDS.vehicleIdentifier, TLV(0x04, Buffer.from('0102030405060708', 'hex'))),
      extension(CERTIFICATE_EXTENSION_OIDS.keyRole, Buffer.from('0a0102', 'hex'), true),
      extension(CERTIFICATE_EXTENSION_OIDS.entitlements, TLV(0x04, Buffer.from('010101', 'hex'))),
    ]);
    expect(readCertificateExtensions(der)[1].critical).toBe(true);
    const fields = readEndpointCertificateFields(der);
    expect(fields.vehicleIdentifier?.toString('hex')).toBe('0102030405060708');
    expect(fields.role).toBe('friend');
    expect(fields.entitlements?.toString('hex')).toBe('010101');
  });

  it('throws nothing but ProtocolError on random or mutated input', () => {
    const valid = certificateWith([
      extension(CERTIFICATE_EXTENSION_OIDS.vehicleIdentifier, TLV(0x04, Buffer.alloc(8, 1))),
    ]);
    fc.assert(
      fc.property(fc.oneof(bytes(200), mutated(fc.constant(valid))), (input) => {
        try {
          readEndpointCertificateFields(input);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      RUNS,
    );
  });
});
