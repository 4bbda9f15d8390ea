import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceOemBackend } from '../../src/sim/device-oem/device-oem-backend.js';
import { createTestPki, eventually, mtlsRequest, startTestSystem, type TestSystem } from '../support/harness.js';
import { deviceOemBackendFor } from '../support/simulated-world.js';
import { captureOutput, type CapturedOutput } from '../support/captured-output.js';
import { activeOwnerKey } from '../support/owner-key.js';
import { TestCar } from '../support/test-car.js';

/**
 * One correlation id follows a request through every hop (README "Operations"): the partner
 * call's `x-request-id`, the audit row, the outbox row and the job, the worker's log lines for
 * the car's ack and for the notification to the Device OEM.
 */
describe('correlation id from the partner call to the car ack and the notification', () => {
  let system: TestSystem;
  let car: TestCar;
  let output: CapturedOutput;
  let deviceOem: DeviceOemBackend;

  beforeAll(async () => {
    output = captureOutput();
    // A live Device OEM backend: notifications of a key go out in order, so a dead partner URL
    // would hold this key's notifications behind the failing KEY_ACTIVATED.
    const pki = await createTestPki();
    deviceOem = deviceOemBackendFor(pki);
    const port = await deviceOem.listen();
    system = await startTestSystem({
      pki,
      worker: true,
      env: {
        PAIRING_SCRYPT_N: '1024',
        LOG_LEVEL: 'debug',
        PARTNER_NOTIFICATION_URLS: `device-oem=https://localhost:${port}`,
      },
    });
    car = await TestCar.provision(system, 1);
  });
  afterAll(async () => {
    output.restore();
    await car?.close();
    await system?.stop();
    await deviceOem?.close();
  });

  /** The JSON log lines that carry `correlationId`. */
  const logLines = (correlationId: string) =>
    output
      .text()
      .split('\n')
      .filter((line) => line.includes(correlationId))
      .map((line) => {
        try {
          return JSON.parse(line) as { message?: { msg?: string; correlationId?: string } };
        } catch {
          return {};
        }
      })
      .map((entry) => entry.message?.msg)
      .filter((msg): msg is string => typeof msg === 'string');

  it('carries the x-request-id of a partner terminate into the audit, outbox, job, ack and notification logs', async () => {
    const { keyId } = await activeOwnerKey(system, car);
    const correlationId = 'corr-terminate-0001';
    const res = await mtlsRequest<{ state: string }>(system, 'POST', `/partner/v1/keys/${keyId}/terminate`, {
      identity: system.pki.partner,
      body: { reason: 'correlation test' },
      headers: { 'x-request-id': correlationId },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe(correlationId);

    const db = system.server.dataSource;
    const audit = await db.query<Array<{ action: string }>>(
      'SELECT action FROM audit_events WHERE correlation_id = $1 ORDER BY id',
      [correlationId],
    );
    expect(audit.map((row) => row.action)).toContain('key.terminating');
    const outbox = await db.query<Array<{ id: string; topic: string }>>(
      'SELECT id, topic FROM outbox WHERE correlation_id = $1',
      [correlationId],
    );
    expect(outbox.map((row) => row.topic).sort()).toEqual(['partner-notification', 'vehicle-command']);
    const command = outbox.find((row) => row.topic === 'vehicle-command')!;
    // The relay publishes the row after the commit, so the job appears a moment later.
    const job = await eventually(
      () => system.server.queues.vehicleCommands.getJob(command.id),
      (found) => found !== undefined,
    );
    expect(job?.data).toMatchObject({ correlationId });

    // The worker's lines: published, acked by the car, and the notification attempt.
    await eventually(
      () => logLines(correlationId),
      (messages) =>
        messages.includes('outbox row published') &&
        messages.includes('command acked') &&
        messages.includes('partner notified'),
    );
    // The car's ack settles the key in a transaction that keeps the same id.
    await eventually(
      async () =>
        (
          await db.query<Array<{ action: string }>>('SELECT action FROM audit_events WHERE correlation_id = $1', [
            correlationId,
          ])
        ).map((row) => row.action),
      (actions) => actions.includes('key.terminated'),
    );
  });
});
