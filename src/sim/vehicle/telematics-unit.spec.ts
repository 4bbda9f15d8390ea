import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signCompactJws } from '../../protocol/crypto/compact-jws.js';
import { COMMAND_JWS_TYPE, type TelematicsCommand } from '../../protocol/telematics-messages.js';
import { TelematicsUnit } from './telematics-unit.js';

const server = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const vehicle = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const VEHICLE_ID = '0011223344556677';

function unit(appliedHistory?: number) {
  const applied: number[] = [];
  const telematics = new TelematicsUnit({
    vehicleIdentifier: VEHICLE_ID,
    vehiclePrivateKey: vehicle.privateKey,
    telematicsPublicKey: server.publicKey,
    apply: (command) => applied.push(command.seq),
    keyListDigest: () => '0'.repeat(64),
    ...(appliedHistory === undefined ? {} : { appliedHistory }),
  });
  return { telematics, applied };
}

const command = (seq: number) =>
  signCompactJws(
    JSON.stringify({
      v: 1,
      vehicleId: VEHICLE_ID,
      seq,
      cmd: 'SYNC',
      keyListVersion: seq,
      iat: 1,
    } satisfies TelematicsCommand),
    server.privateKey,
    { typ: COMMAND_JWS_TYPE },
  );

describe('telematics unit: what it keeps of the commands it applied', () => {
  it('keeps the newest 1 000 by default and as many as asked, while applying every one once', async () => {
    const bounded = unit(3);
    const unbounded = unit();
    for (let seq = 1; seq <= 1_005; seq++) {
      await bounded.telematics.receive(command(seq));
      await unbounded.telematics.receive(command(seq));
    }
    await bounded.telematics.receive(command(1_005)); // a duplicate: acked again, not applied again
    expect(bounded.applied).toHaveLength(1_005);
    expect(bounded.telematics.applied.map((c) => c.seq)).toEqual([1_003, 1_004, 1_005]);
    expect(unbounded.telematics.applied).toHaveLength(1_000);
    expect(unbounded.telematics.applied[0].seq).toBe(6);
    const none = unit(0);
    await none.telematics.receive(command(1));
    expect(none.telematics.applied).toEqual([]);
    expect(none.applied).toEqual([1]);
  });
});
