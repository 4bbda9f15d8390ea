import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseDigest } from '../support/database.js';
import {
  TEST_VIN,
  adminRequest,
  mtlsRequest,
  newVehicleKeyPair,
  startTestSystem,
  type ClientIdentity,
  type HttpResult,
  type TestSystem,
} from '../support/harness.js';
import { activeOwnerKey, certificateDer, endpointChain } from '../support/owner-key.js';
import { TestCar } from '../support/test-car.js';

const PROBLEM = 'application/problem+json';
const KIB = 1024;

/** `depth` nested objects: {"a":{"a":…}} */
const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('hostile bodies: a clear 4xx problem+json and nothing changed in the database', () => {
  let system: TestSystem;
  let writer: string;
  let car: TestCar;
  let keyId: string;
  let before: Record<string, string>;

  beforeAll(async () => {
    system = await startTestSystem({ worker: true });
    writer = await system.operatorToken(['vehicles:write', 'keys:read', 'keys:write', 'audit:read']);
    car = await TestCar.provision(system, 1);
    keyId = (await activeOwnerKey(system, car)).keyId;
    // The worker is done with the car (key active); stop it so only requests could change anything.
    await system.worker?.close();
    system.worker = undefined;
  });
  afterAll(async () => {
    await car?.close();
    await system?.stop();
  });

  const digest = () => databaseDigest((sql) => system.server.dataSource.query(sql));
  /** Where a refusal may leave its audit row (checked below), and the chain head it moved. */
  const AUDIT_TABLES = new Set(['audit_events', 'audit_chain_heads']);
  let lastAuditId = '0';
  async function rebase(): Promise<void> {
    before = await digest();
    const [row] = await system.server.dataSource.query<Array<{ id: string }>>(
      `SELECT coalesce(max(id), 0)::text AS id FROM audit_events`,
    );
    lastAuditId = row.id;
  }

  async function expectRefused(
    res: HttpResult<{ status: number; type: string; detail?: string }>,
    status: number,
    detail?: RegExp,
  ): Promise<void> {
    expect(res.status, res.text.slice(0, 300)).toBe(status);
    expect(res.headers['content-type']).toContain(PROBLEM);
    expect(res.body.status).toBe(status);
    expect(res.body.type).toMatch(/^urn:digital-key-server:problem:/);
    if (detail) expect(res.body.detail).toMatch(detail);
    expect(res.text).not.toMatch(/at .*\.(ts|js):\d+/); // no stack trace
    const after = await digest();
    expect(Object.keys(after).filter((table) => !AUDIT_TABLES.has(table) && after[table] !== before[table])).toEqual(
      [],
    );
    // The one trace a refusal may leave: the audit row of a refused key registration.
    const audited = await system.server.dataSource.query<Array<{ action: string }>>(
      'SELECT action FROM audit_events WHERE id > $1',
      [lastAuditId],
    );
    expect(audited.map((row) => row.action).filter((action) => action !== 'key.registration-refused')).toEqual([]);
    await rebase();
  }

  const vehicleBody = (n: number) => ({
    vin: TEST_VIN(n),
    telematicsUrl: `https://127.0.0.1:1/vehicles/${n}/commands`,
    publicKey: newVehicleKeyPair().publicKeyPem,
  });
  const provision = (options: { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> }) =>
    adminRequest<{ status: number; type: string; detail?: string; errors?: Array<{ field: string }> }>(
      system,
      'POST',
      '/v1/vehicles',
      { token: writer, ...options },
    );
  const partner = (path: string, options: { body?: unknown; rawBody?: string; identity?: ClientIdentity }) =>
    mtlsRequest<{ status: number; type: string; detail?: string }>(system, 'POST', path, {
      identity: system.pki.partner,
      ...options,
    });
  const register = (body: Record<string, unknown>) =>
    partner('/partner/v1/keys', { body: { vehicleId: car.vehicleIdentifier, role: 'owner', ...body } });

  describe('operator API', () => {
    beforeAll(rebase);

    it('rejects unknown fields with 400 and names them', async () => {
      const res = await provision({ body: { ...vehicleBody(901), color: 'red' } });
      expect(res.body.errors?.map((e) => e.field)).toContain('color');
      await expectRefused(res, 400);
    });

    it('rejects wrong types, malformed JSON, a non-JSON media type and bodies over 64 KiB', async () => {
      await expectRefused(await provision({ body: { ...vehicleBody(902), vin: 12345 } }), 400);
      await expectRefused(await provision({ body: [vehicleBody(902)] }), 400);
      await expectRefused(await provision({ body: null }), 400);
      await expectRefused(await provision({ rawBody: '{"vin": ' }), 400);
      await expectRefused(await provision({ rawBody: 'vin=x', headers: { 'content-type': 'application/xml' } }), 415);
      await expectRefused(await provision({ body: { ...vehicleBody(903), publicKey: 'x'.repeat(70 * KIB) } }), 413);
    });

    it('rejects huge strings under the size cap and deeply nested bodies', async () => {
      await expectRefused(await provision({ body: { ...vehicleBody(904), publicKey: 'x'.repeat(60 * KIB) } }), 400);
      await expectRefused(await provision({ body: { ...vehicleBody(904), vin: 'W'.repeat(60 * KIB) } }), 400);
      const deep = JSON.stringify(vehicleBody(905)).replace(/}$/, `,"extra":${nested(5_000)}}`);
      await expectRefused(await provision({ rawBody: deep }), 400);
      await expectRefused(await provision({ rawBody: `${'['.repeat(30_000)}${']'.repeat(30_000)}` }), 400);
    });

    it('rejects a key that is not P-256, both a key and a CSR, and a CSR that is not base64 DER', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
      await expectRefused(await provision({ body: { ...vehicleBody(906), publicKey: rsa.toString() } }), 400, /P-256/);
      await expectRefused(await provision({ body: { ...vehicleBody(907), csr: 'x' } }), 400);
      const { publicKey: _publicKey, ...noKey } = vehicleBody(908);
      void _publicKey;
      for (const csr of [
        '-----BEGIN CERTIFICATE REQUEST-----\n!!!not base64!!!\n-----END CERTIFICATE REQUEST-----',
        `-----BEGIN CERTIFICATE REQUEST-----\n${randomBytes(300).toString('base64')}\n-----END CERTIFICATE REQUEST-----`,
      ]) {
        await expectRefused(await provision({ body: { ...noKey, csr } }), 400);
      }
    });
  });

  describe('partner API', () => {
    beforeAll(rebase);

    it('rejects key registrations with unknown fields, wrong types, invalid base64, random DER and 20-certificate chains', async () => {
      const { chain } = await endpointChain(system, car.vehicleIdentifier);
      await expectRefused(await register({ certificateChain: chain, admin: true }), 400);
      await expectRefused(await register({ certificateChain: chain, role: 'god' }), 400);
      await expectRefused(await register({ certificateChain: chain.join('') }), 400);
      await expectRefused(await register({ certificateChain: ['!!!not base64!!!', ...chain.slice(1)] }), 400);
      await expectRefused(
        await register({ certificateChain: [randomBytes(400).toString('base64'), ...chain.slice(1)] }),
        400,
      );
      const cross = certificateDer(system.pki.set.deviceOemCaCrossCert).toString('base64');
      await expectRefused(
        await register({ certificateChain: [...chain, ...Array.from({ length: 17 }, () => cross)] }),
        400,
      );
      await expectRefused(await register({ certificateChain: [chain[0].repeat(8)] }), 400);
    });

    it('rejects malformed termination attestations and deeply nested or oversized lifecycle bodies', async () => {
      const terminate = `/partner/v1/keys/${keyId}/terminate`;
      for (const terminationAttestation of ['!!!', randomBytes(80).toString('base64'), 'A'.repeat(5_000), 42]) {
        await expectRefused(await partner(terminate, { body: { reason: 'x', terminationAttestation } }), 400);
      }
      await expectRefused(await partner(terminate, { rawBody: `{"reason":${nested(5_000)}}` }), 400);
      await expectRefused(await partner(terminate, { body: { reason: 'r'.repeat(70 * KIB) } }), 413);
      await expectRefused(await partner(`/partner/v1/keys/not-hex/suspend`, { body: {} }), 400);
    });
  });

  describe('vehicle API', () => {
    beforeAll(rebase);
    const asCar = (path: string, options: { body?: unknown; rawBody?: string }) =>
      partner(path, { ...options, identity: car.identity });

    it('rejects malformed JWS acks and bad event batches', async () => {
      const header = Buffer.from('{"alg":"ES256"}').toString('base64url');
      for (const ack of [
        'a.b',
        'a.b.c.d',
        `${header}.${Buffer.from('{"seq":1}').toString('base64url')}.`,
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`,
        `${header}.${'A'.repeat(5_000)}.AAAA`,
        `${header}.%%%.AAAA`,
      ]) {
        await expectRefused(await asCar('/vehicle/v1/acks', { body: { ack } }), 400);
      }
      await expectRefused(await asCar('/vehicle/v1/acks', { body: { ack: ['a.b.c'] } }), 400);
      const event = { type: 'KEY_DELETED_AT_CAR', keyId };
      await expectRefused(await asCar('/vehicle/v1/events', { body: { events: [] } }), 400);
      await expectRefused(
        await asCar('/vehicle/v1/events', { body: { events: Array.from({ length: 51 }, () => event) } }),
        400,
      );
      await expectRefused(
        await asCar('/vehicle/v1/events', { body: { events: [{ ...event, type: 'UNLOCK_ALL' }] } }),
        400,
      );
      await expectRefused(await asCar('/vehicle/v1/events', { body: { events: [{ ...event, extra: 1 }] } }), 400);
    });

    it('acknowledges a replayed signed command at the car without applying it again (PROTOCOL.md §8)', async () => {
      const applied = car.appliedCommands.length;
      const lastSeq = car.unit.lastSeq;
      for (const command of car.rawCommands) await car.unit.receive(command);
      expect(car.appliedCommands).toHaveLength(applied);
      expect(car.unit.lastSeq).toBe(lastSeq);
      expect(await digest()).toEqual(before);
    });
  });
});
