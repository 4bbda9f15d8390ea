import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate, loadCertificateAuthority, importPublicPoint } from '../../src/pki/certificate-issuer.js';
import { issueEndpointCertificate } from '../../src/pki/endpoint-certificate.js';
import { createPkiSet } from '../../src/pki/dev-pki.js';
import { P256PublicKey } from '../../src/protocol/crypto/p256.js';
import { decodeKtsReceipt, ktsReceiptMessage } from '../../src/protocol/kts-receipt.js';
import { deriveVerifierFromPassword } from '../../src/protocol/spake2plus-password.js';
import { adminRequest, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { captureOutput, type CapturedOutput } from '../support/captured-output.js';
import { TestCarFleet, type TestCar } from '../support/test-car.js';
import {
  certificateDer,
  endpointChain,
  newEndpointPoint,
  startPairing as startOwnerPairing,
  type Registration,
} from '../support/owner-key.js';

describe('owner pairing and key registration (server side)', () => {
  let system: TestSystem;
  let operator: string;
  const fleet = new TestCarFleet(() => system);
  let output: CapturedOutput;

  beforeAll(async () => {
    output = captureOutput();
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '4096', LOG_LEVEL: 'debug' } });
    operator = await system.operatorToken(['vehicles:write', 'keys:read', 'audit:read']);
  });
  afterAll(async () => {
    output.restore();
    await fleet.close();
    await system?.stop();
  });

  const car = (n: number): Promise<TestCar> => fleet.provision(n);

  const startPairing = (vin: string) => startOwnerPairing(system, vin);

  const chainFor = (vehicleIdentifier: string, options: { notBefore?: Date; notAfter?: Date } = {}) =>
    endpointChain(system, vehicleIdentifier, options);

  const register = (vehicleId: string, certificateChain: string[]) =>
    mtlsRequest<Registration>(system, 'POST', '/partner/v1/keys', {
      identity: system.pki.partner,
      body: { vehicleId, role: 'owner', certificateChain, deviceMetadata: { model: 'Phone 17' } },
    });

  const keyCount = async () =>
    (await system.server.dataSource.query<Array<{ n: number }>>('SELECT count(*)::int AS n FROM digital_keys'))[0].n;

  it('sends the car the verifier of a password it shows once, then erases the verifier when the car acks', async () => {
    const target = await car(1);
    const session = await startPairing(target.vin);
    expect(session.password).toMatch(/^\d{8}$/);
    await eventually(
      () => target.appliedCommands.find((c) => c.cmd === 'PAIRING_VERIFIER'),
      (c) => c !== undefined,
    );
    const command = target.appliedCommands.find((c) => c.cmd === 'PAIRING_VERIFIER') as unknown as {
      verifier: { w0: string; L: string; salt: string; scryptN: number; scryptR: number; scryptP: number };
    };
    const expected = await deriveVerifierFromPassword(session.password, Buffer.from(command.verifier.salt, 'hex'), {
      N: command.verifier.scryptN,
      r: command.verifier.scryptR,
      p: command.verifier.scryptP,
    });
    expect(command.verifier.w0).toBe(expected.w0.toString('hex'));
    expect(command.verifier.L).toBe(expected.L.toString('hex'));
    expect(JSON.stringify(command)).not.toContain(expected.w1.toString('hex'));
    await eventually(
      async () =>
        (
          await system.server.dataSource.query<Array<{ sealed: boolean; acked: Date | null }>>(
            'SELECT sealed_verifier IS NOT NULL AS sealed, verifier_acked_at AS acked FROM pairing_sessions WHERE id = $1',
            [session.sessionId],
          )
        )[0],
      (row) => !row.sealed && row.acked !== null,
    );
  });

  it('never writes the password to the database, queue data, audit rows or logs', async () => {
    const target = await car(2);
    const session = await startPairing(target.vin);
    await eventually(
      () => target.appliedCommands.length,
      (n) => n >= 1,
    );
    const db = system.server.dataSource;
    const tables = await db.query<Array<{ table_name: string }>>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
    );
    for (const { table_name } of tables) {
      const rows = await db.query<Array<{ row: string }>>(`SELECT row_to_json(t)::text AS row FROM "${table_name}" t`);
      for (const { row } of rows) expect(row, table_name).not.toContain(session.password);
    }
    const redis = system.server.redis;
    const keys = await redis.keys(`${system.config.queuePrefix}:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const type = await redis.type(key);
      const dump =
        type === 'hash'
          ? JSON.stringify(await redis.hgetall(key))
          : type === 'string'
            ? String(await redis.get(key))
            : type === 'list'
              ? JSON.stringify(await redis.lrange(key, 0, -1))
              : type === 'zset'
                ? JSON.stringify(await redis.zrange(key, 0, -1))
                : '';
      expect(dump, key).not.toContain(session.password);
    }
    expect(output.text()).not.toContain(session.password);
    expect(output.text()).toContain('command acked');
  });

  it('refuses an Idempotency-Key on the call that shows the password', async () => {
    const target = await car(3);
    const res = await adminRequest(system, 'POST', `/v1/vehicles/${target.vin}/owner-pairing`, {
      token: operator,
      body: {},
      headers: { 'idempotency-key': 'k1' },
    });
    expect(res.status).toBe(400);
  });

  it('registers the owner key with a KTS receipt, sends ADD_KEY, and activates it when the car acks', async () => {
    const target = await car(4);
    await startPairing(target.vin);
    const { key, endpoint, chain } = await chainFor(target.vehicleIdentifier);
    const res = await register(target.vehicleIdentifier, chain);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: 'owner', state: 'pending' });
    const receipt = decodeKtsReceipt(Buffer.from(res.body.ktsReceipt.encoded, 'base64'));
    const kts = P256PublicKey.fromKeyObject(createPublicKey(system.pki.set.ktsPublicKey));
    const message = ktsReceiptMessage({
      vehicleIdentifier: Buffer.from(target.vehicleIdentifier, 'hex'),
      keyIdentifier: Buffer.from(res.body.keyId, 'hex'),
      endpointCertificateDer: endpoint,
      issuedAtMs: receipt.issuedAtMs,
    });
    expect(kts.verify(message, receipt.signature)).toBe(true);
    await eventually(
      () => target.appliedCommands.find((c) => c.cmd === 'ADD_KEY'),
      (c) => c !== undefined,
    );
    const add = target.appliedCommands.find((c) => c.cmd === 'ADD_KEY') as unknown as Record<string, string>;
    expect(add).toMatchObject({ keyId: res.body.keyId, role: 'owner', endpointPublicKey: key.toString('hex') });
    const state = await eventually(
      async () =>
        (
          await mtlsRequest<{ state: string }>(system, 'GET', `/partner/v1/keys/${res.body.keyId}`, {
            identity: system.pki.partner,
          })
        ).body.state,
      (s) => s === 'active',
    );
    expect(state).toBe('active');
    // Another partner cannot see it: absent, not forbidden.
    const foreign = await mtlsRequest(system, 'GET', `/partner/v1/keys/${res.body.keyId}`, {
      identity: system.pki.otherPartner,
    });
    expect(foreign.status).toBe(404);
  });

  it('honours Idempotency-Key on partner registration: replay, mismatch, and per-partner scope', async () => {
    const target = await car(7);
    await startPairing(target.vin);
    const { chain } = await chainFor(target.vehicleIdentifier);
    const send = (certificateChain: string[]) =>
      mtlsRequest<Registration>(system, 'POST', '/partner/v1/keys', {
        identity: system.pki.partner,
        body: { vehicleId: target.vehicleIdentifier, role: 'owner', certificateChain },
        headers: { 'idempotency-key': 'register-7' },
      });
    const first = await send(chain);
    const replay = await send(chain);
    expect(first.status).toBe(201);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.keyId).toBe(first.body.keyId);
    expect(replay.body.ktsReceipt.signature).toBe(first.body.ktsReceipt.signature);
    const other = await send((await chainFor(target.vehicleIdentifier)).chain);
    expect(other.status).toBe(422);
    const rows = await system.server.dataSource.query<Array<{ principal: string }>>(
      `SELECT principal FROM idempotency_keys WHERE key = 'register-7'`,
    );
    expect(rows).toEqual([{ principal: 'partner:device-oem' }]);
  });

  it('refuses bad registrations with clear 4xx problems, records nothing, and audits each', async () => {
    const target = await car(5);
    const before = await keyCount();
    // no pairing session yet
    const noSession = await register(target.vehicleIdentifier, (await chainFor(target.vehicleIdentifier)).chain);
    expect(noSession.status).toBe(409);
    await startPairing(target.vin);

    const other = await createPkiSet();
    const foreignInstance = await loadCertificateAuthority(other.instanceCaCert, other.instanceCaKey);
    const foreignEndpoint = await issueEndpointCertificate({
      instanceCa: foreignInstance,
      endpointPublicKey: newEndpointPoint(),
      vehicleIdentifier: Buffer.from(target.vehicleIdentifier, 'hex'),
      role: 'owner',
    });
    const foreign = await register(
      target.vehicleIdentifier,
      [foreignEndpoint, certificateDer(other.instanceCaCert), certificateDer(other.deviceOemCaCrossCert)].map((c) =>
        c.toString('base64'),
      ),
    );
    expect(foreign.status).toBe(400);
    expect(foreign.text).toContain('untrusted');

    const day = 86_400_000;
    const expired = await chainFor(target.vehicleIdentifier, {
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    const expiredRes = await register(target.vehicleIdentifier, expired.chain);
    expect(expiredRes.status).toBe(400);
    expect(expiredRes.text).toContain('expired');

    const instance = await loadCertificateAuthority(system.pki.set.instanceCaCert, system.pki.set.instanceCaKey);
    const mismatched = await issueCertificate({
      profile: 'endpoint',
      commonName: 'deadbeefdeadbeef',
      publicKey: await importPublicPoint(newEndpointPoint()),
      issuer: instance,
      vehicleIdentifier: Buffer.from(target.vehicleIdentifier, 'hex'),
      keyRole: 'owner',
    });
    const mismatchRes = await register(
      target.vehicleIdentifier,
      [
        Buffer.from(mismatched.rawData),
        certificateDer(system.pki.set.instanceCaCert),
        certificateDer(system.pki.set.deviceOemCaCrossCert),
      ].map((c) => c.toString('base64')),
    );
    expect(mismatchRes.status).toBe(400);
    expect(mismatchRes.text).toContain('key-identifier-mismatch');

    const unknown = await register('0000000000000000', (await chainFor('0000000000000000')).chain);
    expect(unknown.status).toBe(404);

    const garbage = await register(target.vehicleIdentifier, ['not base64!']);
    expect(garbage.status).toBe(400);

    expect(await keyCount()).toBe(before);
    const refused = await system.server.dataSource.query<Array<{ n: number }>>(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'key.registration-refused'`,
    );
    expect(refused[0].n).toBeGreaterThanOrEqual(5);
  });

  it('lets a second owner in only through a new pairing session, revoking the first', async () => {
    const target = await car(6);
    await startPairing(target.vin);
    const first = await register(target.vehicleIdentifier, (await chainFor(target.vehicleIdentifier)).chain);
    expect(first.status).toBe(201);
    const withoutSession = await register(target.vehicleIdentifier, (await chainFor(target.vehicleIdentifier)).chain);
    expect(withoutSession.status).toBe(409);
    expect(withoutSession.text).toContain('new pairing session');

    const older = await startPairing(target.vin);
    const newer = await startPairing(target.vin);
    const statuses = await system.server.dataSource.query<Array<{ id: string; status: string }>>(
      'SELECT id, status FROM pairing_sessions WHERE id = ANY($1::uuid[])',
      [[older.sessionId, newer.sessionId]],
    );
    expect(Object.fromEntries(statuses.map((s) => [s.id, s.status]))).toEqual({
      [older.sessionId]: 'superseded',
      [newer.sessionId]: 'open',
    });
    const second = await register(target.vehicleIdentifier, (await chainFor(target.vehicleIdentifier)).chain);
    expect(second.status).toBe(201);
    const oldState = await mtlsRequest<{ state: string }>(system, 'GET', `/partner/v1/keys/${first.body.keyId}`, {
      identity: system.pki.partner,
    });
    expect(oldState.body.state).toBe('terminating');
    await eventually(
      () => target.appliedCommands.find((c) => c.cmd === 'SET_STATE' && c.keyId === first.body.keyId),
      (c) => c !== undefined,
    );
  });
});
