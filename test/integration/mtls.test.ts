import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_VIN,
  adminRequest,
  mtlsRequest,
  newVehicleKeyPair,
  startTestSystem,
  type TestSystem,
} from '../support/harness.js';

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
});
