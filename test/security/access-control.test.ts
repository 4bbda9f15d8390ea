import { CompactSign } from 'jose';
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACK_JWS_TYPE } from '../../src/protocol/telematics-messages.js';
import { P256KeyPair } from '../../src/protocol/crypto/p256.js';
import { databaseDigest } from '../support/database.js';
import { adminRequest, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey, terminationAttestation } from '../support/owner-key.js';
import { TestCarFleet, type TestCar } from '../support/test-car.js';

interface AuditRow {
  actor_type: string;
  actor_id: string;
  subject_type: string;
  subject_id: string;
  details: { operation: string; reason: string; answered: number };
}

describe('access control between tenants, devices and vehicles (BOLA)', () => {
  let system: TestSystem;
  const fleet = new TestCarFleet(() => system);

  beforeAll(async () => {
    system = await startTestSystem({ worker: true });
  });
  afterAll(async () => {
    await fleet.close();
    await system?.stop();
  });

  const car = (n: number): Promise<TestCar> => fleet.provision(n);

  /** Runs `attack` with the worker stopped, so only the requests could change the database. */
  async function withWorkerStopped(attack: () => Promise<void>): Promise<void> {
    await system.worker?.close();
    system.worker = undefined;
    try {
      await attack();
    } finally {
      await system.startWorker();
    }
  }

  const query = <T>(sql: string, params: unknown[] = []) => system.server.dataSource.query<T>(sql, params);
  const digest = () => databaseDigest((sql) => query(sql));
  const denials = (subjectId: string) =>
    query<AuditRow[]>(
      `SELECT actor_type, actor_id, subject_type, subject_id, details FROM audit_events
        WHERE action = 'access.denied' AND subject_id = $1 ORDER BY id`,
      [subjectId],
    );
  const keyState = async (keyId: string) =>
    (await query<Array<{ state: string }>>('SELECT state FROM digital_keys WHERE key_identifier = $1', [keyId]))[0]
      .state;

  it("answers 404 to a partner touching another partner's key, changes nothing, and audits each attempt", async () => {
    const target = await car(1);
    const { keyId } = await activeOwnerKey(system, target);
    const auditBefore = (await query<Array<{ n: number }>>('SELECT count(*)::int AS n FROM audit_events'))[0].n;
    const keysBefore = await query('SELECT * FROM digital_keys ORDER BY id');
    const attempts = [
      ['GET', `/partner/v1/keys/${keyId}`, undefined],
      ['POST', `/partner/v1/keys/${keyId}/suspend`, { reason: 'mine now' }],
      ['POST', `/partner/v1/keys/${keyId}/resume`, {}],
      ['POST', `/partner/v1/keys/${keyId}/terminate`, { reason: 'mine now' }],
    ] as const;
    for (const [method, path, body] of attempts) {
      const res = await mtlsRequest<{ type: string; detail: string }>(system, method, path, {
        identity: system.pki.otherPartner,
        body,
      });
      expect(res.status, path).toBe(404);
      expect(res.headers['content-type']).toContain('application/problem+json');
      // The same answer as for a key that does not exist at all: no existence oracle.
      expect(res.body.detail).toBe(`key ${keyId} does not exist`);
    }
    expect(await query('SELECT * FROM digital_keys ORDER BY id')).toEqual(keysBefore);
    const rows = await denials(keyId);
    expect(rows.map((row) => row.details.operation)).toEqual(['read', 'suspend', 'resume', 'terminate']);
    for (const row of rows) {
      expect(row).toMatchObject({
        actor_type: 'partner',
        actor_id: 'other-oem',
        subject_type: 'key',
        details: { reason: 'key of another partner', answered: 404 },
      });
    }
    const auditAfter = (await query<Array<{ n: number }>>('SELECT count(*)::int AS n FROM audit_events'))[0].n;
    expect(auditAfter).toBe(auditBefore + attempts.length);
    // A key that does not exist is not an attempt on anyone: 404, not audited.
    const ghost = await mtlsRequest(system, 'GET', '/partner/v1/keys/00112233445566ff', {
      identity: system.pki.otherPartner,
    });
    expect(ghost.status).toBe(404);
    expect(await denials('00112233445566ff')).toEqual([]);
  });

  it("answers 403 to a friend device's termination attestation for the owner key, and audits it", async () => {
    const target = await car(2);
    const owner = P256KeyPair.generate();
    const friendDevice = P256KeyPair.generate();
    const { keyId } = await activeOwnerKey(system, target, Buffer.from(owner.publicPoint));
    const signedByFriend = terminationAttestation(target.vehicleIdentifier, keyId, friendDevice, 1n);
    await withWorkerStopped(async () => {
      const before = await digest();
      const res = await mtlsRequest<{ type: string }>(system, 'POST', `/partner/v1/keys/${keyId}/terminate`, {
        identity: system.pki.partner,
        body: { reason: 'deleted in wallet', terminationAttestation: signedByFriend },
      });
      expect(res.status).toBe(403);
      expect(res.body.type).toBe('urn:digital-key-server:problem:forbidden');
      expect(await keyState(keyId)).toBe('active');
      const after = await digest();
      expect({ ...after, audit_events: '', audit_chain_heads: '' }).toEqual({
        ...before,
        audit_events: '',
        audit_chain_heads: '',
      });
      const [row] = await denials(keyId);
      expect(row).toMatchObject({
        actor_type: 'partner',
        actor_id: 'device-oem',
        details: { operation: 'terminate', reason: 'termination attestation not signed by the key', answered: 403 },
      });
    });
  });

  it("answers 403 to a vehicle acking another vehicle's command, either relayed or signed by itself, and audits it", async () => {
    const victim = await car(3);
    const intruder = await car(4);
    victim.behaviour = 'accept-later';
    const operator = await system.operatorToken(['vehicles:write']);
    const queued = await adminRequest<{ id: string; seq: number }>(system, 'POST', `/v1/vehicles/${victim.vin}/sync`, {
      token: operator,
    });
    expect(queued.status).toBe(202);
    await eventually(
      () => victim.pendingAcks.length,
      (n) => n === 1,
    );
    await withWorkerStopped(async () => {
      const before = await digest();
      // 1. The victim's genuine ack, relayed over the intruder's connection.
      const relayed = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
        identity: intruder.identity,
        body: { ack: victim.pendingAcks[0] },
      });
      expect(relayed.status).toBe(403);
      // 2. An ack the intruder signs with its own vehicle key (its TLS identity), naming the victim.
      const claim = {
        vehicleId: victim.vehicleIdentifier,
        seq: queued.body.seq,
        keyListVersion: 0,
        keyListDigest: '0'.repeat(64),
      };
      const forged = await new CompactSign(Buffer.from(JSON.stringify(claim)))
        .setProtectedHeader({ alg: 'ES256', typ: ACK_JWS_TYPE })
        .sign(createPrivateKey(intruder.identity.keyPem));
      const signed = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
        identity: intruder.identity,
        body: { ack: forged },
      });
      expect(signed.status).toBe(403);
      expect(signed.headers['content-type']).toContain('application/problem+json');
      const after = await digest();
      expect({ ...after, audit_events: '', audit_chain_heads: '' }).toEqual({
        ...before,
        audit_events: '',
        audit_chain_heads: '',
      });
      const rows = await denials(victim.vehicleIdentifier);
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row).toMatchObject({
          actor_type: 'vehicle',
          actor_id: intruder.vin,
          subject_type: 'vehicle',
          details: { operation: 'ack', reason: 'ack for another vehicle', answered: 403 },
        });
      }
      // The victim's own ack still lands, once; its replay is 409 and changes nothing.
      const genuine = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
        identity: victim.identity,
        body: { ack: victim.pendingAcks[0] },
      });
      expect(genuine.status).toBe(200);
      const settled = await digest();
      const replay = await mtlsRequest<{ type: string }>(system, 'POST', '/vehicle/v1/acks', {
        identity: victim.identity,
        body: { ack: victim.pendingAcks[0] },
      });
      expect(replay.status).toBe(409);
      expect(replay.body.type).toBe('urn:digital-key-server:problem:conflict');
      expect(await digest()).toEqual(settled);
    });
  });
});
