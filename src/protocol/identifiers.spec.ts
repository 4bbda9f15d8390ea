import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import vectors from '../../test/fixtures/vectors/transaction-profile.json';
import { fromHex, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';
import { keyIdentifier, readerIdentifier, splitReaderIdentifier } from './identifiers.js';

const endpointPk = fromHex(vectors.inputs.endpoint_lt_pk);

describe('identifiers (§4.6)', () => {
  it('Home-Key profile: SHA-1(pk)[0:6] reproduces endpoint_id_sha1_6', () => {
    expect(toHex(keyIdentifier(endpointPk, 'home-key-sha1-6'))).toBe(vectors.inputs.endpoint_id_sha1_6);
  });

  it('default profile: SHA-256(pk)[0:8]', () => {
    const expected = createHash('sha256').update(endpointPk).digest().subarray(0, 8);
    expect(keyIdentifier(endpointPk)).toEqual(expected);
    expect(keyIdentifier(endpointPk, 'sha256-8')).toHaveLength(8);
  });

  it('needs an uncompressed point', () => {
    expect(() => keyIdentifier(endpointPk.subarray(0, 33))).toThrow(ProtocolError);
  });

  it('reader id = vehicle identifier ‖ reader index', () => {
    const readerId = readerIdentifier(fromHex('0102030405060708'), fromHex('1112131415161718'));
    expect(toHex(readerId)).toBe(vectors.inputs.reader_id);
    expect(splitReaderIdentifier(readerId)).toEqual({
      vehicleIdentifier: fromHex('0102030405060708'),
      readerIndex: fromHex('1112131415161718'),
    });
    expect(() => readerIdentifier(fromHex('01'), fromHex('1112131415161718'))).toThrow(ProtocolError);
  });
});
