import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_VIN, adminRequest, newVehicleKeyPair, startTestSystem, type TestSystem } from '../support/harness.js';
import { generateEcKeyPair, x509 } from '../../src/pki/certificate-issuer.js';
import { AuditService } from '../../src/audit/audit.service.js';

const PROBLEM = 'application/problem+json';

describe('operator API (admin listener)', () => {
  let system: TestSystem;
  let writer: string;
  let reader: string;

  beforeAll(async () => {
    system = await startTestSystem();
    writer = await system.operatorToken(['vehicles:write', 'keys:read', 'keys:write', 'audit:read']);
    reader = await system.operatorToken(['keys:read']);
  });
  afterAll(() => system?.stop());

  const vehicleBody = (n: number) => ({
    vin: TEST_VIN(n),
    telematicsUrl: `https://127.0.0.1:1/vehicles/${n}/commands`,
    publicKey: newVehicleKeyPair().publicKeyPem,
  });

  describe('vehicles', () => {
    it('provisions a vehicle with a certificate chained to the root and an 8-byte identifier', async () => {
      const body = vehicleBody(1);
      const res = await adminRequest<{
        vin: string;
        vehicleIdentifier: string;
        certificatePem: string;
        trust: { telematicsPublicKeyPem: string };
      }>(system, 'POST', '/v1/vehicles', { token: writer, body });
      expect(res.status).toBe(201);
      expect(res.body.vehicleIdentifier).toMatch(/^[0-9a-f]{16}$/);
      const { X509Certificate } = await import('node:crypto');
      const cert = new X509Certificate(res.body.certificatePem);
      expect(cert.verify(new X509Certificate(system.pki.set.vehicleOemRootCert).publicKey)).toBe(true);
      expect(cert.subject).toContain(`CN=${body.vin}`);
      expect(res.body.trust.telematicsPublicKeyPem).toContain('BEGIN PUBLIC KEY');

      const got = await adminRequest<{ vin: string }>(system, 'GET', `/v1/vehicles/${body.vin}`, { token: reader });
      expect(got.status).toBe(200);
      expect(got.body.vin).toBe(body.vin);
      const duplicate = await adminRequest(system, 'POST', '/v1/vehicles', { token: writer, body: vehicleBody(1) });
      expect(duplicate.status).toBe(409);
      const missing = await adminRequest(system, 'GET', `/v1/vehicles/${TEST_VIN(999)}`, { token: reader });
      expect(missing.status).toBe(404);
      expect(missing.headers['content-type']).toContain(PROBLEM);
    });

    it('provisions from a CSR signed by the car key, and refuses a CSR whose signature is broken', async () => {
      const keys = await generateEcKeyPair();
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'CN=car',
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      });
      const body = { vin: TEST_VIN(40), telematicsUrl: 'https://127.0.0.1:1/x', csr: csr.toString('pem') };
      const res = await adminRequest<{ certificatePem: string }>(system, 'POST', '/v1/vehicles', {
        token: writer,
        body,
      });
      expect(res.status).toBe(201);
      const { X509Certificate } = await import('node:crypto');
      const issued = new X509Certificate(res.body.certificatePem);
      const spki = Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey));
      expect(issued.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);
      const der = Buffer.from(csr.rawData);
      der[der.length - 5] ^= 0x01; // inside the signature
      const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----`;
      const refused = await adminRequest(system, 'POST', '/v1/vehicles', {
        token: writer,
        body: { ...body, vin: TEST_VIN(41), csr: tampered },
      });
      expect(refused.status).toBe(400);
    });

    it('pages through the vehicle list by cursor', async () => {
      for (const n of [10, 11, 12]) {
        expect(
          (await adminRequest(system, 'POST', '/v1/vehicles', { token: writer, body: vehicleBody(n) })).status,
        ).toBe(201);
      }
      const first = await adminRequest<{ items: Array<{ vin: string }>; next?: string }>(
        system,
        'GET',
        '/v1/vehicles?limit=2',
        {
          token: reader,
        },
      );
      expect(first.body.items).toHaveLength(2);
      expect(first.body.next).toBeDefined();
      const second = await adminRequest<{ items: Array<{ vin: string }> }>(
        system,
        'GET',
        `/v1/vehicles?limit=2&after=${first.body.next}`,
        { token: reader },
      );
      expect(second.body.items[0].vin > first.body.items[1].vin).toBe(true);
    });
  });

  describe('access profiles', () => {
    it('seeds the PROTOCOL.md §6 defaults with their TLV', async () => {
      const res = await adminRequest<{ items: Array<{ name: string; entitlementsTlv: string; builtin: boolean }> }>(
        system,
        'GET',
        '/v1/access-profiles',
        { token: reader },
      );
      const byName = Object.fromEntries(res.body.items.map((p) => [p.name, p]));
      expect(byName.OWNER.entitlementsTlv).toBe('01013f');
      expect(byName.UNLOCK_ONLY.entitlementsTlv).toBe('010101');
      expect(byName.UNLOCK_AND_DRIVE.entitlementsTlv).toBe('01010d');
      expect(byName.RESTRICTED_DRIVE.entitlementsTlv).toBe('01010d02020069');
      expect(byName.OWNER.builtin).toBe(true);
    });

    it('creates, updates with optimistic concurrency, and retires a profile', async () => {
      const created = await adminRequest<{ id: string; version: number; entitlementsTlv: string }>(
        system,
        'POST',
        '/v1/access-profiles',
        {
          token: writer,
          body: {
            name: 'WEEKDAY_VALET',
            description: 'Valet on weekdays',
            entitlements: {
              rights: ['unlock', 'engine-start', 'drive'],
              maxSpeedKmh: 50,
              timeOfDay: { startMinute: 420, endMinute: 1320, weekdays: 31 },
            },
          },
        },
      );
      expect(created.status).toBe(201);
      expect(created.body.entitlementsTlv).toBe('01010d02020032060501a405281f');
      const updated = await adminRequest<{ version: number }>(system, 'PUT', `/v1/access-profiles/${created.body.id}`, {
        token: writer,
        body: { description: 'Valet, weekdays only', version: created.body.version },
      });
      expect(updated.status).toBe(200);
      expect(updated.body.version).toBe(created.body.version + 1);
      const stale = await adminRequest(system, 'PUT', `/v1/access-profiles/${created.body.id}`, {
        token: writer,
        body: { retired: true, version: created.body.version },
      });
      expect(stale.status).toBe(409);
      const retired = await adminRequest(system, 'PUT', `/v1/access-profiles/${created.body.id}`, {
        token: writer,
        body: { retired: true, version: updated.body.version },
      });
      expect(retired.status).toBe(200);
      const active = await adminRequest<{ items: Array<{ name: string }> }>(system, 'GET', '/v1/access-profiles', {
        token: reader,
      });
      expect(active.body.items.map((p) => p.name)).not.toContain('WEEKDAY_VALET');
      const invalid = await adminRequest(system, 'POST', '/v1/access-profiles', {
        token: writer,
        body: { name: 'BAD', description: 'x', entitlements: { rights: ['fly'] } },
      });
      expect(invalid.status).toBe(400);
    });
  });

  describe('idempotency', () => {
    /** The same POST twice, one after the other, as the writer. */
    const postTwice = async (path: string, body: unknown, headers: Record<string, string>) => {
      const send = () => adminRequest<{ id: string }>(system, 'POST', path, { token: writer, body, headers });
      const first = await send();
      return [first, await send()] as const;
    };

    it('replays the stored response for the same key and body, and refuses a different body with 422', async () => {
      const body = vehicleBody(20);
      const headers = { 'idempotency-key': 'provision-20' };
      const [first, again] = await postTwice('/v1/vehicles', body, headers);
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.body.id).toBe(first.body.id);
      expect(again.headers['idempotent-replayed']).toBe('true');
      const mismatch = await adminRequest(system, 'POST', '/v1/vehicles', {
        token: writer,
        body: vehicleBody(21),
        headers,
      });
      expect(mismatch.status).toBe(422);
      const count = await system.server.dataSource.query<Array<{ n: number }>>(
        'SELECT count(*)::int AS n FROM vehicles WHERE vin = $1',
        [TEST_VIN(21)],
      );
      expect(count[0].n).toBe(0);
    });

    it('answers 409 while the first request with the key is in progress, and runs concurrent duplicates once', async () => {
      await system.server.dataSource.query(
        `INSERT INTO idempotency_keys (principal, key, request_hash, status) VALUES ('operator:test-operator', 'busy', $1, 'in-progress')`,
        ['0'.repeat(64)],
      );
      const busy = await adminRequest(system, 'POST', '/v1/vehicles', {
        token: writer,
        body: vehicleBody(30),
        headers: { 'idempotency-key': 'busy' },
      });
      expect([409, 422]).toContain(busy.status);

      const body = vehicleBody(31);
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          adminRequest<{ id?: string }>(system, 'POST', '/v1/vehicles', {
            token: writer,
            body,
            headers: { 'idempotency-key': 'race-31' },
          }),
        ),
      );
      for (const res of results) expect([201, 409]).toContain(res.status);
      const ids = new Set(results.filter((r) => r.status === 201).map((r) => r.body.id));
      expect(ids.size).toBe(1);
      const rows = await system.server.dataSource.query<Array<{ n: number }>>(
        'SELECT count(*)::int AS n FROM vehicles WHERE vin = $1',
        [body.vin],
      );
      expect(rows[0].n).toBe(1);
    });

    it('replays on another route that takes the key: the decorator applies the interceptor to its handler', async () => {
      const body = { name: 'IDEMPOTENT_VALET', description: 'Created once', entitlements: { rights: ['unlock'] } };
      const headers = { 'idempotency-key': 'profile-valet' };
      const [first, again] = await postTwice('/v1/access-profiles', body, headers);
      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(again.status).toBe(201);
      expect(again.body.id).toBe(first.body.id);
      expect(again.headers['idempotent-replayed']).toBe('true');
    });

    it('leaves a GET with an Idempotency-Key alone: answered as without it, nothing stored, even for a malformed key', async () => {
      const vin = TEST_VIN(22);
      expect(
        (await adminRequest(system, 'POST', '/v1/vehicles', { token: writer, body: vehicleBody(22) })).status,
      ).toBe(201);
      const plain = await adminRequest<{ vin: string }>(system, 'GET', `/v1/vehicles/${vin}`, { token: reader });
      for (const key of ['get-22', 'x'.repeat(300)]) {
        const keyed = await adminRequest<{ vin: string }>(system, 'GET', `/v1/vehicles/${vin}`, {
          token: reader,
          headers: { 'idempotency-key': key },
        });
        expect(keyed.status).toBe(200);
        expect(keyed.body).toEqual(plain.body);
        expect(keyed.headers['idempotent-replayed']).toBeUndefined();
      }
      const stored = await system.server.dataSource.query<Array<{ n: number }>>(
        `SELECT count(*)::int AS n FROM idempotency_keys WHERE key = 'get-22'`,
      );
      expect(stored[0].n).toBe(0);
    });

    it('documents the key on every POST except the three routes that cannot take one', async () => {
      const served = await adminRequest<{
        paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string }> }>>;
      }>(system, 'GET', '/docs/openapi.json');
      const posts = Object.entries(served.body.paths).filter(([, item]) => item.post);
      const without = posts
        .filter(([, item]) => !item.post.parameters?.some((p) => p.in === 'header' && p.name === 'Idempotency-Key'))
        .map(([path]) => path);
      expect(posts.length).toBeGreaterThan(without.length);
      // Owner pairing refuses a key (400, the password is shown once); vehicle events are idempotent
      // by themselves; a repeated vehicle ack is a replay (409).
      expect(without.sort()).toEqual(['/v1/vehicles/{vin}/owner-pairing', '/vehicle/v1/acks', '/vehicle/v1/events']);
    });
  });

  describe('audit log', () => {
    it('records changes in a hash chain that verifies, and detects a tampered row', async () => {
      const auditor = await system.operatorToken(['audit:read']);
      const list = await adminRequest<{
        items: Array<{ id: string; action: string; chain: number; prevHash: string; hash: string }>;
      }>(system, 'GET', '/v1/audit?limit=1000', { token: auditor });
      expect(list.body.items.some((e) => e.action === 'vehicle.provisioned')).toBe(true);
      // Each row links to the previous row of its own chain.
      const heads = new Map<number, string>();
      for (const item of list.body.items) {
        if (heads.has(item.chain)) expect(item.prevHash).toBe(heads.get(item.chain));
        heads.set(item.chain, item.hash);
      }
      const ok = await adminRequest<{ ok: boolean; checked: number; chains: number }>(
        system,
        'GET',
        '/v1/audit/verify',
        { token: auditor },
      );
      expect(ok.body).toMatchObject({ ok: true, checked: list.body.items.length, chains: heads.size });

      const victim = list.body.items[1];
      const db = system.server.dataSource;
      const [{ details: original }] = await db.query<Array<{ details: unknown }>>(
        'SELECT details FROM audit_events WHERE id = $1',
        [victim.id],
      );
      await expect(db.query(`UPDATE audit_events SET action = 'x' WHERE id = $1`, [victim.id])).rejects.toThrow(
        /append-only/,
      );
      // An attacker with database owner rights can bypass the trigger; the chain still tells.
      await db.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await db.query(`UPDATE audit_events SET details = '{"vehicleIdentifier":"0000000000000000"}' WHERE id = $1`, [
        victim.id,
      ]);
      await db.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      const broken = await adminRequest<{ ok: boolean; firstBroken: { id: string; reason: string } }>(
        system,
        'GET',
        '/v1/audit/verify',
        { token: auditor },
      );
      expect(broken.body.ok).toBe(false);
      expect(broken.body.firstBroken).toEqual({ id: victim.id, reason: 'hash-mismatch' });
      // Put the row back as it was, so the next test starts from an intact log.
      await db.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await db.query(`UPDATE audit_events SET details = $2 WHERE id = $1`, [victim.id, JSON.stringify(original)]);
      await db.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      expect((await adminRequest<{ ok: boolean }>(system, 'GET', '/v1/audit/verify', { token: auditor })).body.ok).toBe(
        true,
      );
    });

    it('appends concurrent transactions side by side on parallel chains, each chain still linear', async () => {
      const auditor = await system.operatorToken(['audit:read']);
      const audit = system.server.admin.get(AuditService);
      const db = system.server.dataSource;
      const before = (await adminRequest<{ checked: number }>(system, 'GET', '/v1/audit/verify', { token: auditor }))
        .body.checked;
      const run = randomUUID().slice(0, 8);
      // 64 transactions at once, each with two rows that must stay together in one chain; each
      // waits a moment between its rows, so the transactions overlap.
      await Promise.all(
        Array.from({ length: 64 }, (_, i) =>
          db.transaction(async (manager) => {
            await audit.append(manager, {
              actor: { type: 'system', id: 'test' },
              action: 'test.parallel',
              subject: { type: 'test', id: `${run}-${i}` },
            });
            await manager.query('SELECT pg_sleep(0.01)');
            await audit.append(manager, {
              actor: { type: 'system', id: 'test' },
              action: 'test.parallel-second',
              subject: { type: 'test', id: `${run}-${i}` },
            });
          }),
        ),
      );
      // A rolled-back transaction leaves no row and holds no chain.
      await expect(
        db.transaction(async (manager) => {
          await audit.append(manager, {
            actor: { type: 'system', id: 'test' },
            action: 'test.rolled-back',
            subject: { type: 'test', id: run },
          });
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      const rows = await db.query<
        Array<{ id: string; subject: string; action: string; chain: number; prevHash: string; hash: string }>
      >(
        `SELECT id::text, subject_id AS subject, action, chain, prev_hash AS "prevHash", hash FROM audit_events
          WHERE subject_type = 'test' AND subject_id LIKE $1 ORDER BY audit_events.id`,
        [`${run}%`],
      );
      expect(rows).toHaveLength(128);
      const chains = new Set<number>();
      for (let i = 0; i < 64; i++) {
        const [first, second] = rows.filter((row) => row.subject === `${run}-${i}`);
        expect([first.action, second.action]).toEqual(['test.parallel', 'test.parallel-second']);
        expect(second.chain).toBe(first.chain);
        expect(second.prevHash).toBe(first.hash);
        chains.add(first.chain);
      }
      expect(chains.size).toBeGreaterThan(1);
      const verified = await adminRequest<{ ok: boolean; checked: number }>(system, 'GET', '/v1/audit/verify', {
        token: auditor,
      });
      expect(verified.body).toMatchObject({ ok: true, checked: before + 128 });
    });

    it('hashes single rows in the database as the verifier does, and waits for a head when every one is held', async () => {
      const auditor = await system.operatorToken(['audit:read']);
      const audit = system.server.admin.get(AuditService);
      const db = system.server.dataSource;
      const run = randomUUID().slice(0, 8);
      const details = {
        id: 'not the row id',
        text: 'quotes " and \\ back-slashes, ünïcødé, emoji 🚗, control \u0001',
        nested: { b: [1, 2.5, null, true], a: { '"id":"': 'x' } },
      };
      // One row per transaction, 32 at once: each is drawn, hashed and linked by the database.
      await Promise.all(
        Array.from({ length: 32 }, (_, i) =>
          db.transaction((manager) =>
            audit.append(manager, {
              actor: { type: 'system', id: 'test' },
              action: 'test.single',
              subject: { type: 'test', id: `${run}-${i}` },
              details: { ...details, i },
              correlationId: i % 2 ? `corr-${i}` : null,
            }),
          ),
        ),
      );
      // Every head held by another transaction: the next append waits for one, then lands.
      const holder = db.createQueryRunner();
      await holder.connect();
      await holder.startTransaction();
      await holder.query('SELECT chain FROM audit_chain_heads FOR UPDATE');
      let landed = false;
      const waiting = db
        .transaction((manager) =>
          audit.append(manager, {
            actor: { type: 'system', id: 'test' },
            action: 'test.single-waited',
            subject: { type: 'test', id: `${run}-waited` },
            details,
          }),
        )
        .then(() => (landed = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(landed).toBe(false);
      await holder.commitTransaction();
      await holder.release();
      await waiting;
      const rows = await db.query<Array<{ action: string; details: Record<string, unknown> }>>(
        `SELECT action, details FROM audit_events WHERE subject_type = 'test' AND subject_id LIKE $1`,
        [`${run}-%`],
      );
      expect(rows).toHaveLength(33);
      expect(rows.find((row) => row.action === 'test.single-waited')?.details).toEqual(details);
      const verified = await adminRequest<{ ok: boolean }>(system, 'GET', '/v1/audit/verify', { token: auditor });
      expect(verified.body.ok).toBe(true);
    });

    it('tells a chain whose last rows were cut off by its head', async () => {
      const auditor = await system.operatorToken(['audit:read']);
      const audit = system.server.admin.get(AuditService);
      const db = system.server.dataSource;
      await db.transaction((manager) =>
        audit.append(manager, {
          actor: { type: 'system', id: 'test' },
          action: 'test.tail',
          subject: { type: 'test', id: 'tail' },
        }),
      );
      const [tail] = await db.query<Array<Record<string, unknown> & { id: string }>>(
        `SELECT * FROM audit_events WHERE action = 'test.tail' ORDER BY id DESC LIMIT 1`,
      );
      // Someone with the owner's rights deletes the newest row of a chain: every link left still holds.
      await db.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await db.query('DELETE FROM audit_events WHERE id = $1', [tail.id]);
      await db.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      const broken = await adminRequest<{ ok: boolean; firstBroken: { id: string; reason: string } }>(
        system,
        'GET',
        '/v1/audit/verify',
        { token: auditor },
      );
      expect(broken.body.ok).toBe(false);
      expect(broken.body.firstBroken).toEqual({ id: tail.id, reason: 'head-mismatch' });
      // Put it back, so later tests start from an intact log.
      const columns = Object.keys(tail);
      await db.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await db.query(
        `INSERT INTO audit_events (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
        columns.map((column) => (column === 'details' ? JSON.stringify(tail[column]) : tail[column])),
      );
      await db.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      expect((await adminRequest<{ ok: boolean }>(system, 'GET', '/v1/audit/verify', { token: auditor })).body.ok).toBe(
        true,
      );
    });
  });
});
