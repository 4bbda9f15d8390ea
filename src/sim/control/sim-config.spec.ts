import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/config.js';
import { writeDevPki } from '../../pki/dev-pki.js';
import { loadSimConfig } from './sim-config.js';

describe('loadSimConfig', () => {
  let pkiDir: string;
  beforeAll(async () => {
    pkiDir = join(mkdtempSync(join(tmpdir(), 'sim-config-')), 'pki');
    await writeDevPki(pkiDir);
  });

  it('has the documented defaults and reads the PKI folder, operator-token key included', () => {
    const config = loadSimConfig({ SIM_PKI_DIR: pkiDir });
    expect(config).toMatchObject({
      deviceOemPort: 9443,
      telematicsPort: 9444,
      controlPort: 9090,
      serverApiUrl: 'https://localhost:8443',
      serverAdminUrl: 'http://localhost:8080',
      telematicsUrl: 'https://localhost:9444',
      pairingTimeoutMs: 30_000,
    });
    expect(config.stateFile.endsWith(join('.dev', 'sim-state.json'))).toBe(true);
    expect(config.pki.telematicsGatewayCert).toContain('BEGIN CERTIFICATE');
    expect(config.operatorTokenKeyPem).toContain('PRIVATE KEY');
  });

  it.each([
    ['SIM_CONTROL_PORT', 'ninety'],
    ['SIM_DEVICE_OEM_PORT', '70000'],
    ['SIM_SERVER_API_URL', 'http://localhost:8443'],
    ['SIM_SERVER_ADMIN_URL', 'not a url'],
    ['SIM_TELEMATICS_URL', 'ftp://sim:9444'],
    ['SIM_OPERATOR_TOKEN', 'not-a-jwt'],
    ['SIM_PAIRING_TIMEOUT_MS', '5'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadSimConfig({ SIM_PKI_DIR: pkiDir, [name]: value })).toThrow(ConfigError);
    expect(() => loadSimConfig({ SIM_PKI_DIR: pkiDir, [name]: value })).toThrow(name);
  });

  it('names SIM_PKI_DIR when the PKI is missing', () => {
    expect(() => loadSimConfig({ SIM_PKI_DIR: join(pkiDir, 'nowhere') })).toThrow(/SIM_PKI_DIR=.*npm run pki:dev/);
  });
});
