import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SealedStateFile, StateFileError, keyFileFor } from './sealed-state-file.js';

function folder(): string {
  return mkdtempSync(join(tmpdir(), 'sealed-state-'));
}

const SECRET =
  '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----';

describe('SealedStateFile', () => {
  it('saves sealed, with the key in its own 0600 file, and loads what it saved', () => {
    const path = join(folder(), 'sim-state.json');
    const file = SealedStateFile.open<{ key: string; n: number }>(path);
    expect(file.load()).toBeUndefined();
    file.save({ key: SECRET, n: 7 });
    expect(file.keyPath).toBe(keyFileFor(path));
    expect(file.keyPath.endsWith('sim-state.key')).toBe(true);
    expect(statSync(file.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const onDisk = readFileSync(path, 'utf8');
    expect(onDisk).not.toContain('PRIVATE KEY');
    expect(onDisk).not.toContain('MIGHAgEAMBMG');
    expect(SealedStateFile.open<{ key: string; n: number }>(path).load()).toEqual({ key: SECRET, n: 7 });
  });

  it('refuses a tampered state', () => {
    const path = join(folder(), 'state.json');
    SealedStateFile.open(path).save({ cars: ['WDD1234567A000001'] });
    const envelope = JSON.parse(readFileSync(path, 'utf8')) as { format: number; sealed: string };
    const sealed = Buffer.from(envelope.sealed, 'base64');
    sealed[sealed.length - 1] ^= 0x01;
    writeFileSync(path, JSON.stringify({ ...envelope, sealed: sealed.toString('base64') }));
    expect(() => SealedStateFile.open(path).load()).toThrow(StateFileError);
    expect(() => SealedStateFile.open(path).load()).toThrow(/tampered, or sealed under another key/);
  });

  it('refuses a state sealed under another key, a state without its key, and a file that is not one', () => {
    const dir = folder();
    const path = join(dir, 'state.json');
    SealedStateFile.open(path).save({ n: 1 });
    const other = join(dir, 'other.json');
    SealedStateFile.open(other).save({ n: 2 });
    writeFileSync(path, readFileSync(other));
    expect(() => SealedStateFile.open(path).load()).toThrow(/does not open/);
    const orphan = join(folder(), 'orphan.json');
    writeFileSync(orphan, readFileSync(other));
    expect(() => SealedStateFile.open(orphan)).toThrow(/its key .* does not/);
    writeFileSync(path, '{"hello":"world"}');
    expect(() => SealedStateFile.open(path).load()).toThrow(/not a sealed state file/);
  });

  it('refuses a key file that does not hold a 32-byte key', () => {
    const path = join(folder(), 'state.json');
    writeFileSync(keyFileFor(path), Buffer.alloc(16).toString('base64'));
    expect(() => SealedStateFile.open(path)).toThrow(/32-byte key/);
  });
});
