import { compactVerify } from 'jose';
import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelematicsRejection } from '../../src/sim/vehicle/telematics-unit.js';
import { adminRequest, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { TestCarFleet, type TestCar } from '../support/test-car.js';

interface Delivery {
  id: string;
  seq: number;
  status: string;
  attempts: number;
  lastError: string | null;
}

describe('delivery of signed commands to cars (outbox → BullMQ → telematics)', () => {
  let system: TestSystem;
  let operator: string;
  const fleet = new TestCarFleet(() => system);

  beforeAll(async () => {
    system = await startTestSystem({ worker: true });
    operator = await system.operatorToken(['vehicles:write', 'keys:read']);
  });
  afterAll(async () => {
    await fleet.close();
    await system?.stop();
  });

  const car = (n: number): Promise<TestCar> => fleet.provision(n);

  async function sync(vin: string): Promise<Delivery> {
    const res = await adminRequest<Delivery>(system, 'POST', `/v1/vehicles/${vin}/sync`, { token: operator });
    expect(res.status).toBe(202);
    return res.body;
  }

  async function delivery(vin: string, id: string): Promise<Delivery> {
    const res = await adminRequest<{ items: Delivery[] }>(system, 'GET', `/v1/vehicles/${vin}/deliveries`, {
      token: operator,
    });
    const found = res.body.items.find((item) => item.id === id);
    if (!found) throw new Error(`delivery ${id} not listed`);
    return found;
  }

  const acked = (vin: string, id: string) =>
    eventually(
      () => delivery(vin, id),
      (d) => d.status === 'acked',
    );

  it('delivers a SYNC the car verifies against the pinned telematics key, and stores the ack', async () => {
    const target = await car(1);
    const queued = await sync(target.vin);
    expect(queued.status).toBe('pending');
    expect(queued.seq).toBe(1);
    await acked(target.vin, queued.id);
    expect(target.appliedCommands).toHaveLength(1);
    expect(target.appliedCommands[0]).toMatchObject({ v: 1, cmd: 'SYNC', seq: 1, vehicleId: target.vehicleIdentifier });
    const vehicle = await adminRequest<{ ackedSeq: number; ackedKeyListDigest: string }>(
      system,
      'GET',
      `/v1/vehicles/${target.vin}`,
      { token: operator },
    );
    expect(vehicle.body.ackedSeq).toBe(1);
    expect(vehicle.body.ackedKeyListDigest).toBe(target.unit.keyListDigest());
    // The worker reports commit → ack latency.
    const metrics = await fetch(`http://127.0.0.1:${system.worker!.metricsPort}/metrics`).then((res) => res.text());
    expect(metrics).toMatch(/dks_command_ack_latency_seconds_count\{command="SYNC"\} [1-9]/);
    // And its first two hops: outbox row → queue, queue → a worker starting the job.
    expect(metrics).toMatch(/dks_outbox_relay_lag_seconds_count\{topic="vehicle-command"\} [1-9]/);
    expect(metrics).toMatch(/dks_queue_wait_seconds_count\{queue="\{vehicle-commands\}"\} [1-9]/);
    // The job in Redis carries identifiers only.
    const job = await system.server.queues.vehicleCommands.getJob((await outboxIdOf(queued.id))!);
    expect(Object.keys(job!.data).sort()).toEqual(['correlationId', 'deliveryId']);
  });

  async function outboxIdOf(deliveryId: string): Promise<string | undefined> {
    const rows = await system.server.dataSource.query<Array<{ id: string }>>(
      'SELECT id FROM outbox WHERE delivery_id = $1',
      [deliveryId],
    );
    return rows[0]?.id;
  }

  it('keeps retrying while the car is offline and delivers everything in order when it is back', async () => {
    const target = await car(2);
    target.behaviour = 'offline';
    const first = await sync(target.vin);
    const second = await sync(target.vin);
    const third = await sync(target.vin);
    const failing = await eventually(
      () => delivery(target.vin, first.id),
      (d) => d.attempts >= 2,
    );
    expect(failing.status).toBe('pending');
    expect(failing.lastError).toBeTruthy();
    target.behaviour = 'online';
    await acked(target.vin, third.id);
    await acked(target.vin, second.id);
    await acked(target.vin, first.id);
    expect(target.appliedCommands.map((c) => c.seq)).toEqual([1, 2, 3]);
  });

  it('redelivers through the sweeper when the job is lost from Redis after the relay published it', async () => {
    const target = await car(3);
    target.behaviour = 'offline';
    const queued = await sync(target.vin);
    const outboxId = await eventually(
      async () => {
        const rows = await system.server.dataSource.query<Array<{ id: string; published_at: Date | null }>>(
          'SELECT id, published_at FROM outbox WHERE delivery_id = $1',
          [queued.id],
        );
        return rows[0]?.published_at ? rows[0].id : undefined;
      },
      (id) => id !== undefined,
    );
    await eventually(
      () => delivery(target.vin, queued.id),
      (d) => d.attempts >= 1,
    );
    // Lose the job: as if Redis had been flushed or failed over without it. BullMQ refuses to
    // remove a job while an attempt holds its lock, so try until no attempt is under way.
    await eventually(
      async () => {
        const job = await system.server.queues.vehicleCommands.getJob(outboxId!);
        return job
          ? job.remove().then(
              () => true,
              () => false,
            )
          : true;
      },
      (gone) => gone,
    );
    expect(await system.server.queues.vehicleCommands.getJob(outboxId!)).toBeUndefined();
    target.behaviour = 'online';
    await acked(target.vin, queued.id);
    const rows = await system.server.dataSource.query<
      Array<{
        sweeps: number;
      }>
    >('SELECT sweeps FROM deliveries WHERE id = $1', [queued.id]);
    expect(rows[0].sweeps).toBeGreaterThanOrEqual(1);
    expect(target.appliedCommands.map((c) => c.seq)).toEqual([1]);
  });

  it('applies a command once when the car applied it but the answer was lost', async () => {
    const target = await car(4);
    target.behaviour = 'apply-then-drop';
    const queued = await sync(target.vin);
    await acked(target.vin, queued.id);
    expect(target.received.filter((seq) => seq === queued.seq).length).toBeGreaterThanOrEqual(2);
    expect(target.appliedCommands.filter((c) => c.seq === queued.seq)).toHaveLength(1);
  });

  it('takes an ack the car posts later over mTLS with its vehicle certificate', async () => {
    const target = await car(5);
    target.behaviour = 'accept-later';
    const queued = await sync(target.vin);
    await eventually(
      () => delivery(target.vin, queued.id),
      (d) => d.status === 'sent',
    );
    expect(target.pendingAcks).toHaveLength(1);
    const [header] = target.pendingAcks[0].split('.');
    expect(JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))).toMatchObject({ alg: 'ES256' });
    // Another car cannot ack it: the ack is checked against the caller's own key.
    const other = fleet.cars[0];
    const forged = await mtlsRequest(system, 'POST', '/vehicle/v1/acks', {
      identity: other.identity,
      body: { ack: target.pendingAcks[0] },
    });
    expect(forged.status).toBe(403);
    const res = await mtlsRequest<{ seq: number; status: string }>(system, 'POST', '/vehicle/v1/acks', {
      identity: target.identity,
      body: { ack: target.pendingAcks[0] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ seq: queued.seq, status: 'acked' });
    expect((await delivery(target.vin, queued.id)).status).toBe('acked');
  });

  it('signs commands with the pinned telematics key; the car refuses a forged or altered one', async () => {
    const target = await car(6);
    await acked(target.vin, (await sync(target.vin)).id);
    const raw = target.rawCommands[0];
    const verified = await compactVerify(raw, createPublicKey(system.pki.set.telematicsPublicKey), {
      algorithms: ['ES256'],
    });
    expect(verified.protectedHeader).toMatchObject({ alg: 'ES256', typ: 'dk-command+jws' });
    const payload = JSON.parse(Buffer.from(verified.payload).toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(payload).sort()).toEqual(['cmd', 'iat', 'keyListVersion', 'seq', 'v', 'vehicleId']);
    const [header, body, signature] = raw.split('.');
    const altered = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { seq: number };
    altered.seq = 99;
    await expect(
      target.unit.receive(`${header}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${signature}`),
    ).rejects.toThrow(TelematicsRejection);
    expect(target.unit.lastSeq).toBe(1);
  });
});
