import { SignJWT, base64url } from 'jose';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_TOKEN_AUDIENCE, OPERATOR_TOKEN_ISSUER } from '../../src/common/auth/operator-scopes.js';
import { adminRequest, startTestSystem, type TestSystem } from '../support/harness.js';

const PROBLEM = 'application/problem+json';
const now = () => Math.floor(Date.now() / 1000);

describe('operator tokens (admin listener)', () => {
  let system: TestSystem;
  let vehicleCount: () => Promise<number>;

  beforeAll(async () => {
    system = await startTestSystem();
    vehicleCount = async () =>
      (await system.server.dataSource.query<Array<{ n: number }>>('SELECT count(*)::int AS n FROM vehicles'))[0].n;
  });
  afterAll(() => system?.stop());

  const claims = (overrides: Record<string, unknown> = {}) => ({
    scope: 'keys:read vehicles:write',
    iss: OPERATOR_TOKEN_ISSUER,
    aud: OPERATOR_TOKEN_AUDIENCE,
    sub: 'mallory',
    iat: now(),
    exp: now() + 300,
    ...overrides,
  });
  const signWithServerKey = (payload: Record<string, unknown>, alg = 'ES256') =>
    new SignJWT(payload).setProtectedHeader({ alg }).sign(createPrivateKey(system.pki.set.operatorTokenKey));

  async function expectUnauthorized(token: string | undefined, detail: RegExp): Promise<void> {
    const res = await adminRequest<{ type: string; status: number; detail: string }>(system, 'GET', '/v1/vehicles', {
      token,
    });
    expect(res.status, token).toBe(401);
    expect(res.headers['content-type']).toContain(PROBLEM);
    expect(res.body.type).toBe('urn:digital-key-server:problem:unauthorized');
    expect(res.body.detail).toMatch(detail);
    // The refusal costs nothing: a write with the same token changes nothing.
    const before = await vehicleCount();
    const write = await adminRequest(system, 'POST', '/v1/vehicles', {
      token,
      body: { vin: 'WDD1234567A999999', telematicsUrl: 'https://127.0.0.1:1/x', publicKey: 'x' },
    });
    expect(write.status).toBe(401);
    expect(await vehicleCount()).toBe(before);
  }

  it('answers 401 problem+json without a token, and to a header that is not a bearer token', async () => {
    await expectUnauthorized(undefined, /Authorization: Bearer/);
    const basic = await adminRequest(system, 'GET', '/v1/vehicles', { headers: { authorization: 'Basic YTpi' } });
    expect(basic.status).toBe(401);
  });

  it('answers 401 to an expired token signed by the right key', async () => {
    const expired = await signWithServerKey(claims({ iat: now() - 600, exp: now() - 300 }));
    await expectUnauthorized(expired, /expired/);
  });

  it('answers 401 to a token signed by another key and to one whose signature was altered', async () => {
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const foreign = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256' }).sign(otherKey);
    await expectUnauthorized(foreign, /not valid/);
    const genuine = await signWithServerKey(claims());
    const [header, payload, signature] = genuine.split('.');
    const bytes = Buffer.from(signature, 'base64url');
    bytes[10] ^= 0x01;
    await expectUnauthorized(`${header}.${payload}.${bytes.toString('base64url')}`, /not valid/);
    // The genuine signature over an edited payload (more scopes) does not verify either.
    const widened = base64url.encode(JSON.stringify(claims({ scope: 'keys:read keys:write audit:read' })));
    await expectUnauthorized(`${header}.${widened}.${signature}`, /not valid/);
  });

  it('answers 401 to alg none and to HS256 keyed with the public key', async () => {
    const none = `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify(claims()))}.`;
    await expectUnauthorized(none, /Authorization: Bearer|not valid/);
    const hs256 = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS256' })
      .sign(Buffer.from(system.pki.set.operatorTokenPublicKey));
    await expectUnauthorized(hs256, /not valid/);
  });

  it('answers 401 to the right key with the wrong issuer, audience, or no subject, and to malformed tokens', async () => {
    await expectUnauthorized(await signWithServerKey(claims({ iss: 'someone-else' })), /not valid/);
    await expectUnauthorized(await signWithServerKey(claims({ aud: 'partner-api' })), /not valid/);
    await expectUnauthorized(await signWithServerKey(claims({ sub: undefined })), /not valid/);
    for (const garbage of ['a.b.c', 'not-a-jwt', `${'A'.repeat(4000)}.${'B'.repeat(4000)}.C`]) {
      await expectUnauthorized(garbage, /not valid/);
    }
  });

  it('answers 403 naming the missing scope to a valid token without it', async () => {
    const reader = await system.operatorToken(['keys:read']);
    const before = await vehicleCount();
    const res = await adminRequest<{ type: string; requiredScopes: string[] }>(system, 'POST', '/v1/vehicles', {
      token: reader,
      body: { vin: 'WDD1234567A999998', telematicsUrl: 'https://127.0.0.1:1/x', publicKey: 'x' },
    });
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toContain(PROBLEM);
    expect(res.text).toContain('vehicles:write');
    expect(res.body.requiredScopes).toEqual(['vehicles:write']);
    expect(await vehicleCount()).toBe(before);
    // Scopes the server does not know are dropped, not trusted.
    const invented = await signWithServerKey(claims({ scope: 'admin *' }));
    expect((await adminRequest(system, 'GET', '/v1/vehicles', { token: invented })).status).toBe(403);
  });
});
