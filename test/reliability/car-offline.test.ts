import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  carKeyState,
  carLedger,
  changeKey,
  rowsFrom,
  serverKeyState,
  settledLedger,
  type Rows,
} from '../support/fault-ledger.js';
import { adminRequest, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { TestCar } from '../support/test-car.js';

const LIFECYCLE_CALLS = 120;

const ackSeq = (ack: string) =>
  (JSON.parse(Buffer.from(ack.split('.')[1], 'base64url').toString('utf8')) as { seq: number }).seq;
const SYNCS = 80;

describe('fault: a car offline for a long time with hundreds of pending commands', () => {
  let system: TestSystem;
  let rows: Rows;
  let car: TestCar;
  let keyId: string;

  beforeAll(async () => {
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '1024' } });
    rows = rowsFrom(system.database.url);
    car = await TestCar.provision(system, 1);
    keyId = (await activeOwnerKey(system, car)).keyId;
  });
  afterAll(async () => {
    await car?.close();
    await system?.stop();
  });

  it('applies every command once and in seq order when the car is back', async () => {
    const before = await carLedger(rows, car);
    car.behaviour = 'offline';
    const wentOfflineAt = Date.now();
    const operator = await system.operatorToken(['vehicles:write']);
    const syncs = Promise.all(
      Array.from({ length: SYNCS }, (_, i) =>
        new Promise((resolve) => setTimeout(resolve, i * 50)).then(
          async () => (await adminRequest(system, 'POST', `/v1/vehicles/${car.vin}/sync`, { token: operator })).status,
        ),
      ),
    );
    const statuses: number[] = [];
    for (let i = 0; i < LIFECYCLE_CALLS; i++)
      statuses.push(await changeKey(system, keyId, i % 2 ? 'resume' : 'suspend'));
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect((await syncs).every((status) => status === 202)).toBe(true);
    const offline = await carLedger(rows, car);
    expect(offline.committed).toBe(before.committed + LIFECYCLE_CALLS + SYNCS);
    expect(offline.acked).toBe(before.acked);
    expect(car.appliedCommands).toHaveLength(before.committed);

    const backAt = Date.now();
    car.behaviour = 'online';
    const ledger = await settledLedger(rows, car, 90_000);
    console.info(
      `car offline ${backAt - wentOfflineAt} ms with ${offline.open} pending commands; all applied ${Date.now() - backAt} ms after it came back`,
    );
    expect(ledger).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, failed: 0, open: 0 });
    const seqs = car.appliedCommands.map((command) => command.seq);
    expect(seqs).toEqual(Array.from({ length: offline.committed }, (_, i) => i + 1));
    // An even number of alternating calls starting with suspend ends on resume.
    expect(carKeyState(car, keyId)).toBe('active');
    expect((await serverKeyState(rows, keyId)).state).toBe('active');
  }, 120_000);

  it('takes a replayed old ack and a duplicate command without a second effect', async () => {
    const applied = car.appliedCommands.length;
    const vehicleBefore = await rows<{ acked_seq: string; acked_key_list_digest: string }>(
      'SELECT acked_seq, acked_key_list_digest FROM vehicles WHERE vin = $1',
      [car.vin],
    );
    const keyBefore = await serverKeyState(rows, keyId);
    const notificationsBefore = await rows<{ n: string }>('SELECT count(*) AS n FROM partner_notifications');

    // The car receives old commands again (a retry after a lost answer): acked again, applied never.
    for (const raw of car.rawCommands.slice(0, 20)) await car.unit.receive(raw);
    expect(car.appliedCommands).toHaveLength(applied);
    const oldAck = car.sentAcks.find((ack) => ackSeq(ack) === 3)!;
    expect(oldAck).toBeDefined();

    // … and posts an old ack to the server again: a replay, refused (409) without any effect.
    for (let i = 0; i < 3; i++) {
      const res = await mtlsRequest<{ type: string }>(system, 'POST', '/vehicle/v1/acks', {
        identity: car.identity,
        body: { ack: oldAck },
      });
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    expect(await serverKeyState(rows, keyId)).toEqual(keyBefore);
    expect(
      await rows<{ acked_seq: string; acked_key_list_digest: string }>(
        'SELECT acked_seq, acked_key_list_digest FROM vehicles WHERE vin = $1',
        [car.vin],
      ),
    ).toEqual(vehicleBefore);
    expect(await rows<{ n: string }>('SELECT count(*) AS n FROM partner_notifications')).toEqual(notificationsBefore);
    expect(await carLedger(rows, car)).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0 });
  });
});
