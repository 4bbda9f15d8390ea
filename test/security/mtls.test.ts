import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/app/server.js';
import { x509 } from '../../src/pki/certificate-issuer.js';
import {
  TEST_VIN,
  adminRequest,
  fingerprintOf,
  mtlsRequest,
  newVehicleKeyPair,
  startTestSystem,
  testConfig,
  type TestSystem,
} from '../support/harness.js';

const { KeyUsageFlags, KeyUsagesExtension, ExtendedKeyUsageExtension, ExtendedKeyUsage, BasicConstraintsExtension } =
  x509;

describe('mTLS listener (8443)', () => {
  let system: TestSystem;

  beforeAll(async () => {
    system = await startTestSystem();
  });
  afterAll(() => system?.stop());

  it('refuses the handshake without a client certificate', async () => {
    await expect(mtlsRequest(system, 'GET', '/partner/v1/heartbeat')).rejects.toThrow();
  });

  it('refuses the handshake for a certificate from an unknown CA with the same name', async () => {
    const stranger = await system.pki.issueClient({ issuer: 'unknown' });
    await expect(mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: stranger })).rejects.toThrow();
  });

  it('refuses the handshake for an expired and for a not-yet-valid certificate', async () => {
    const day = 86_400_000;
    const expired = await system.pki.issueClient({
      issuer: 'device-oem',
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    const future = await system.pki.issueClient({
      issuer: 'device-oem',
      notBefore: new Date(Date.now() + day),
      notAfter: new Date(Date.now() + 10 * day),
    });
    await expect(mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: expired })).rejects.toThrow();
    await expect(mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: future })).rejects.toThrow();
  });

  it('refuses a certificate whose key usage does not allow client authentication', async () => {
    const leaf = new BasicConstraintsExtension(false, undefined, true);
    const clientAuth = new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth], false);
    const wrongUsages = {
      // OpenSSL's client purpose check refuses the first two at the handshake…
      'server-only EKU': [
        leaf,
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
      ],
      'no digitalSignature': [leaf, new KeyUsagesExtension(KeyUsageFlags.keyEncipherment, true), clientAuth],
      // …but accepts these two (a CA with clientAuth; keyAgreement alone, which cannot sign): the guard refuses them.
      'a CA certificate': [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.digitalSignature, true),
        clientAuth,
      ],
      'key agreement only': [leaf, new KeyUsagesExtension(KeyUsageFlags.keyAgreement, true), clientAuth],
    };
    const expected: Record<string, string> = {
      'server-only EKU': 'handshake refused',
      'no digitalSignature': 'handshake refused',
      'a CA certificate': '403 the client certificate is a CA certificate',
      'key agreement only': '403 the client certificate key usage lacks digitalSignature',
    };
    for (const [what, extensions] of Object.entries(wrongUsages)) {
      const identity = await system.pki.issueClient({ issuer: 'device-oem', extensions });
      // Even allow-listed, such a certificate is nobody: the handshake fails or the guard says 403.
      const restarted = await createApiServer(
        testConfig(system.pki, system.database, {
          env: { PARTNER_ALLOWLIST: `wrong-usage=${fingerprintOf(identity.certPem)}` },
        }),
      );
      try {
        const target = { ...system, apiUrl: `https://127.0.0.1:${restarted.apiPort}` };
        const outcome = await mtlsRequest<{ detail: string }>(target, 'GET', '/partner/v1/heartbeat', {
          identity,
        }).then(
          (res) => `${res.status} ${res.body.detail}`,
          () => 'handshake refused',
        );
        expect(outcome, what).toBe(expected[what]);
      } finally {
        await restarted.close();
      }
    }
  });

  it('names the partner the allow-listed certificate maps to', async () => {
    const res = await mtlsRequest<{ status: string; partner: string; certificateFingerprint: string }>(
      system,
      'GET',
      '/partner/v1/heartbeat',
      { identity: system.pki.partner },
    );
    expect(res.status).toBe(200);
    expect(res.body.partner).toBe('device-oem');
    expect(res.body.certificateFingerprint).toBe(system.config.partners[0].fingerprint);
  });

  it('answers 403 to a Device OEM certificate that is not on the allow-list', async () => {
    const unlisted = await system.pki.issueClient({ issuer: 'device-oem' });
    const res = await mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: unlisted });
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toContain('application/problem+json');
  });

  it('keeps vehicles off partner routes and partners off vehicle routes', async () => {
    const token = await system.operatorToken(['vehicles:write']);
    const car = newVehicleKeyPair();
    const provisioned = await adminRequest<{ certificatePem: string }>(system, 'POST', '/v1/vehicles', {
      token,
      body: { vin: TEST_VIN(1), telematicsUrl: 'https://127.0.0.1:1/commands', publicKey: car.publicKeyPem },
    });
    expect(provisioned.status).toBe(201);
    const vehicleIdentity = {
      certPem: provisioned.body.certificatePem,
      keyPem: car.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    const onPartner = await mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: vehicleIdentity });
    expect(onPartner.status).toBe(403);
    const partnerOnVehicle = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
      identity: system.pki.partner,
      body: { ack: 'a.b.c' },
    });
    expect(partnerOnVehicle.status).toBe(403);
    // A certificate from our root that no provisioned vehicle holds is nobody.
    const orphan = await system.pki.issueClient({ issuer: 'vehicle-root', profile: 'vehicle' });
    const orphanRes = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
      identity: orphan,
      body: { ack: 'a.b.c' },
    });
    expect(orphanRes.status).toBe(403);
  });

  it('drops a partner removed from the allow-list at the next start', async () => {
    const before = await mtlsRequest(system, 'GET', '/partner/v1/heartbeat', { identity: system.pki.otherPartner });
    expect(before.status).toBe(200);
    const onlyDeviceOem = `device-oem=${fingerprintOf(system.pki.partner.certPem)}`;
    const restarted = await createApiServer(
      testConfig(system.pki, system.database, { env: { PARTNER_ALLOWLIST: onlyDeviceOem } }),
    );
    try {
      const target = { ...system, apiUrl: `https://127.0.0.1:${restarted.apiPort}` };
      const revoked = await mtlsRequest<{ type: string }>(target, 'GET', '/partner/v1/heartbeat', {
        identity: system.pki.otherPartner,
      });
      expect(revoked.status).toBe(403);
      expect(revoked.body.type).toBe('urn:digital-key-server:problem:forbidden');
      const kept = await mtlsRequest(target, 'GET', '/partner/v1/heartbeat', { identity: system.pki.partner });
      expect(kept.status).toBe(200);
      // Its keys are out of reach too: partner routes answer 403 before any lookup.
      const keys = await mtlsRequest(target, 'POST', '/partner/v1/keys/00112233445566778899aabbccddeeff/suspend', {
        identity: system.pki.otherPartner,
        body: {},
      });
      expect(keys.status).toBe(403);
    } finally {
      await restarted.close();
    }
  });
});
