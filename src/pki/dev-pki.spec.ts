import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPkiSet, writeDevPki } from './dev-pki.js';
import { PKI_FILES } from './pki-files.js';

describe('development PKI', () => {
  it('chains every certificate to the right issuer with the right constraints', async () => {
    const set = await createPkiSet();
    const root = new X509Certificate(set.vehicleOemRootCert);
    const deviceOem = new X509Certificate(set.deviceOemCaCert);
    const cross = new X509Certificate(set.deviceOemCaCrossCert);
    const instance = new X509Certificate(set.instanceCaCert);
    const server = new X509Certificate(set.serverCert);
    const client = new X509Certificate(set.deviceOemClientCert);

    expect(root.ca).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(cross.verify(root.publicKey)).toBe(true);
    expect(cross.subject).toBe(deviceOem.subject);
    expect(cross.publicKey.equals(deviceOem.publicKey)).toBe(true);
    expect(instance.verify(deviceOem.publicKey)).toBe(true);
    expect(instance.ca).toBe(true);
    expect(server.verify(root.publicKey)).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    expect(client.verify(deviceOem.publicKey)).toBe(true);
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
  });

  it('writes the files once and keeps them on a second run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dks-pki-'));
    try {
      const first = await writeDevPki(join(dir, 'pki'));
      expect(first.created).toBe(true);
      const rootBefore = readFileSync(join(dir, 'pki', PKI_FILES.vehicleOemRootCert), 'utf8');
      expect(statSync(join(dir, 'pki', PKI_FILES.vehicleOemRootKey)).mode & 0o077).toBe(0);
      const second = await writeDevPki(join(dir, 'pki'));
      expect(second.created).toBe(false);
      expect(readFileSync(join(dir, 'pki', PKI_FILES.vehicleOemRootCert), 'utf8')).toBe(rootBefore);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
