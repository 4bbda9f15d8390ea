import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyListDigest } from '../../src/protocol/telematics-messages.js';
import { adminRequest, eventually, startTestSystem, type TestSystem } from '../support/harness.js';
import { TestCarFleet, type TestCar } from '../support/test-car.js';

interface VehicleView {
  lastSeq: number;
  ackedSeq: number;
  ackedKeyListDigest: string | null;
  keyListMismatchSince: string | null;
}

interface AuditRow {
  action: string;
  details: Record<string, unknown>;
}

describe('key-list reconciliation: the ack digest against the server list, a full SYNC on mismatch', () => {
  let system: TestSystem;
  let operator: string;
  const fleet = new TestCarFleet(() => system);

  beforeAll(async () => {
    system = await startTestSystem({ worker: true, env: { PAIRING_SCRYPT_N: '1024' } });
    operator = await system.operatorToken(['vehicles:write', 'keys:read', 'keys:write', 'audit:read']);
  });
  afterAll(async () => {
    await fleet.close();
    await system?.stop();
  });

  const carWithOwner = (n: number) => fleet.withOwner(n);

  const vehicle = async (car: TestCar) =>
    (await adminRequest<VehicleView>(system, 'GET', `/v1/vehicles/${car.vin}`, { token: operator })).body;
  const syncs = (car: TestCar) => car.appliedCommands.filter((command) => command.cmd === 'SYNC');
  const requestSync = async (car: TestCar) =>
    expect((await adminRequest(system, 'POST', `/v1/vehicles/${car.vin}/sync`, { token: operator })).status).toBe(202);
  const settled = (car: TestCar) =>
    eventually(
      () => vehicle(car),
      (view) => view.ackedSeq === view.lastSeq,
    );
  const vehicleAudit = async (car: TestCar) =>
    (
      await adminRequest<{ items: AuditRow[] }>(
        system,
        'GET',
        `/v1/audit?subjectType=vehicle&subjectId=${car.vin}&limit=100`,
        { token: operator },
      )
    ).body.items;

  it('agrees with a car that holds what the server sent: no SYNC of its own', async () => {
    const { car, keyId } = await carWithOwner(1);
    await requestSync(car);
    const view = await settled(car);
    expect(view.ackedKeyListDigest).toBe(keyListDigest([{ keyId, state: 'active' }]));
    expect(view.keyListMismatchSince).toBeNull();
    // Only the operator's SYNC, which asks for an ack and names no keys.
    expect(syncs(car)).toHaveLength(1);
    expect(syncs(car)[0].keys).toBeUndefined();
  });

  it('a car that lost a key gets the full list and converges', async () => {
    const { car, keyId } = await carWithOwner(2);
    // The car's key store was restored from an old image: the owner key is gone.
    car.keyStates.delete(keyId);
    await requestSync(car);
    const view = await eventually(
      () => vehicle(car),
      (v) => v.ackedSeq === v.lastSeq && syncs(car).length === 2,
    );
    const full = syncs(car)[1];
    expect(full.keys).toEqual([
      expect.objectContaining({
        keyId,
        state: 'active',
        role: 'owner',
        endpointPublicKey: expect.any(String) as string,
      }),
    ]);
    expect(full.keys?.[0].endpointPublicKey).toMatch(/^04[0-9a-f]{128}$/);
    expect(car.keyStates.get(keyId)).toBe('active');
    expect(view.ackedKeyListDigest).toBe(keyListDigest([{ keyId, state: 'active' }]));
    expect(view.keyListMismatchSince).toBeNull();
    const audit = await vehicleAudit(car);
    expect(audit.map((row) => row.action)).toContain('vehicle.key-list-mismatch');
    expect(audit.find((row) => row.action === 'vehicle.key-list-mismatch')?.details).toMatchObject({
      expectedDigest: keyListDigest([{ keyId, state: 'active' }]),
      carDigest: keyListDigest([]),
    });
  });

  it('a revoked key still live at the car is revoked by the SYNC', async () => {
    const { car, keyId } = await carWithOwner(3);
    const terminated = await adminRequest(system, 'POST', `/v1/keys/${keyId}/terminate`, { token: operator });
    expect(terminated.status).toBe(200);
    await settled(car);
    // The car "forgets" the revocation (a faulty ECU write): the next ack shows the key live.
    car.keyStates.set(keyId, 'active');
    await requestSync(car);
    await eventually(
      () => syncs(car),
      (list) => list.length === 2,
    );
    expect(syncs(car)[1].keys).toEqual([{ keyId, state: 'terminated' }]);
    expect(car.keyStates.get(keyId)).toBe('terminated');
    expect((await settled(car)).keyListMismatchSince).toBeNull();
  });

  it('a car that cannot converge gets one SYNC per key-list version and is flagged, not flooded', async () => {
    const { car } = await carWithOwner(4);
    // A key the server never issued: a SYNC only aligns the keys it names, so this one stays.
    car.keyStates.set('00112233445566ff', 'active');
    await requestSync(car);
    await eventually(
      () => syncs(car),
      (list) => list.length === 2,
    );
    await requestSync(car);
    const view = await eventually(
      () => vehicle(car),
      (v) => v.ackedSeq === v.lastSeq && syncs(car).length === 3,
    );
    // Let any further (wrong) SYNC surface before counting.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(syncs(car)).toHaveLength(3);
    expect(syncs(car).filter((command) => command.keys !== undefined)).toHaveLength(1);
    expect(view.keyListMismatchSince).not.toBeNull();
    expect((await vehicleAudit(car)).map((row) => row.action)).toContain('vehicle.key-list-diverged');
    const metrics = await fetch(`http://127.0.0.1:${system.worker!.metricsPort}/metrics`).then((res) => res.text());
    expect(metrics).toMatch(/dks_key_list_mismatches_total\{answered="flagged"\} [1-9]/);
  });
});
