import { createHash, generateKeyPairSync } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../protocol/bytes.js';
import { EphemeralKeyPair } from '../../protocol/crypto/p256.js';
import { encodeEntitlements, ENTITLEMENT_PROFILES, type Entitlements } from '../../protocol/entitlements.js';
import { encodeKeyListVersion, encodeRevocationRelay, PRIVATE_MAILBOX_LAYOUT } from '../../protocol/mailbox.js';
import {
  COMMAND_JWS_TYPE,
  keyListDigest,
  type TelematicsAck,
  type TelematicsCommand,
} from '../../protocol/telematics-messages.js';
import { encodeAuth0Command, encodeSelectCommand, parseAuth0Response } from '../../protocol/transaction.js';
import { parseResponseApdu } from '../../protocol/apdu.js';
import { provisionKey } from '../nfc/provision-key.js';
import { tap } from '../nfc/tap.js';
import { SoftwareSecureElement } from '../secure-element/software-secure-element.js';
import { SimulatedVehicle, type SimulatedVehicleOptions } from './simulated-vehicle.js';
import { TelematicsRejection } from './telematics-unit.js';

function pair(entitlements: Entitlements = ENTITLEMENT_PROFILES.OWNER, options: SimulatedVehicleOptions = {}) {
  const car = new SimulatedVehicle(options);
  const se = new SoftwareSecureElement();
  const key = provisionKey(se, car, { role: 'owner', entitlements });
  return { car, se, key };
}

describe('standard then fast (§4.3, §4.4)', () => {
  it('the first tap is standard, the next ones are fast with the Kpersistent it produced', async () => {
    const { car, se, key } = pair();
    expect(car.endpoint(key.keyId)?.hasKpersistent).toBe(false);
    const first = await tap(se, car, 'door', 'unlock');
    expect(first).toMatchObject({ result: 'granted', transaction: 'standard', keyId: key.keyId, apduCount: 5 });
    expect(car.endpoint(key.keyId)?.hasKpersistent).toBe(true);
    expect(se.key(key.keyId).hasKpersistent).toBe(true);
    const second = await tap(se, car, 'door', 'lock');
    expect(second).toMatchObject({ result: 'granted', transaction: 'fast', keyId: key.keyId, apduCount: 4 });
    expect(await tap(se, car, 'trunk', 'trunk')).toMatchObject({ transaction: 'fast', result: 'granted' });
    expect(car.events.transactions().map((e) => [e.transaction, e.action, e.result, e.role])).toEqual([
      ['standard', 'unlock', 'granted', 'owner'],
      ['fast', 'lock', 'granted', 'owner'],
      ['fast', 'trunk', 'granted', 'owner'],
    ]);
    expect(car.ecuState).toMatchObject({ locked: true, trunkOpen: true });
    expect(se.outcomes.map((o) => [o.transaction, o.success])).toEqual([
      ['standard', true],
      ['fast', true],
      ['fast', true],
    ]);
    expect(car.events.lastTransaction()?.durationMicros).toBeGreaterThan(0);
  });

  it('falls back to standard when the car deleted Kpersistent, then goes fast again', async () => {
    const { car, se, key } = pair();
    await tap(se, car, 'door', 'unlock');
    car.forgetKpersistent(key.keyId);
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'standard', result: 'granted' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast', result: 'granted' });
  });

  it('falls back to standard when the device deleted Kpersistent (its cryptogram is random), then goes fast again', async () => {
    const { car, se, key } = pair();
    await tap(se, car, 'door', 'unlock');
    se.forgetKpersistent(key.keyId);
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'standard', result: 'granted' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast', result: 'granted' });
  });

  it('one car, two phones: each is recognised fast by its own Kpersistent', async () => {
    const car = new SimulatedVehicle();
    const owner = new SoftwareSecureElement();
    const friend = new SoftwareSecureElement();
    const ownerKey = provisionKey(owner, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    const friendKey = provisionKey(friend, car, { role: 'friend', entitlements: ENTITLEMENT_PROFILES.UNLOCK_ONLY });
    await tap(owner, car, 'door', 'unlock');
    await tap(friend, car, 'door', 'unlock');
    expect(await tap(owner, car, 'door', 'lock')).toMatchObject({ transaction: 'fast', keyId: ownerKey.keyId });
    expect(await tap(friend, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast', keyId: friendKey.keyId });
    // Entitlements apply on the fast path too: the friend has no trunk right.
    expect(await tap(friend, car, 'trunk', 'trunk')).toMatchObject({
      transaction: 'fast',
      result: 'denied',
      reason: 'right-missing',
    });
    expect(friend.outcomes.at(-1)).toMatchObject({ success: false, reason: 'entitlement-denied' });
  });

  it('the home-key identifier profile works end to end', async () => {
    const car = new SimulatedVehicle({ keyIdentifierProfile: 'home-key-sha1-6' });
    const se = new SoftwareSecureElement({ keyIdentifierProfile: 'home-key-sha1-6' });
    const { keyId } = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    expect(keyId).toHaveLength(12);
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', keyId });
  });

  it('enforces validity and time-of-day windows with the car clock', async () => {
    let now = Date.UTC(2026, 0, 5, 8, 0); // Monday 08:00 UTC
    const { car, se } = pair(
      { rights: 0x01, timeOfDay: { startMinute: 9 * 60, endMinute: 17 * 60, weekdays: 0x1f } },
      { clock: () => now },
    );
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'outside-time-window' });
    now += 2 * 3600_000;
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
  });

  it('a reader only offers its own actions (engine start from the console)', async () => {
    const { car, se } = pair();
    await expect(tap(se, car, 'door', 'engine-start')).rejects.toThrow(RangeError);
  });
});

describe('engine start (§4.4, §6)', () => {
  it('is granted after a standard transaction for OWNER, and never via fast', async () => {
    const { car, se } = pair();
    await tap(se, car, 'door', 'unlock');
    expect(await tap(se, car, 'door', 'lock')).toMatchObject({ transaction: 'fast' });
    const start = await tap(se, car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'granted', transaction: 'standard', apduCount: 5 });
    expect(start.event.driveLimits).toBeUndefined();
    expect(car.ecuState.engineRunning).toBe(true);
    expect(
      car.events
        .transactions()
        .filter((e) => e.action === 'engine-start')
        .map((e) => e.transaction),
    ).toEqual(['standard']);
  });

  it('is refused for UNLOCK_ONLY, which still unlocks', async () => {
    const { car, se } = pair(ENTITLEMENT_PROFILES.UNLOCK_ONLY);
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    const start = await tap(se, car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'denied', reason: 'right-missing', transaction: 'standard' });
    expect(car.ecuState.engineRunning).toBe(false);
    expect(se.outcomes.at(-1)).toMatchObject({ success: false, reason: 'entitlement-denied' });
  });

  it('reports the RESTRICTED_DRIVE speed limit to the ECU with the start', async () => {
    const { car, se } = pair(ENTITLEMENT_PROFILES.RESTRICTED_DRIVE);
    const start = await tap(se, car, 'console', 'engine-start');
    expect(start).toMatchObject({ result: 'granted', transaction: 'standard' });
    expect(start.event.driveLimits).toEqual({ maxSpeedKmh: 105 });
    expect(car.ecuState).toMatchObject({ engineRunning: true, driveLimits: { maxSpeedKmh: 105 } });
  });

  it('the device gives no fast cryptogram for an engine-start AUTH0 that asks for one', async () => {
    const { car, se } = pair();
    await tap(se, car, 'door', 'unlock'); // the device now holds Kpersistent
    se.pollingFrame(car.reader('console').pollingFrame);
    se.transmit(encodeSelectCommand());
    const auth0 = {
      requestFast: true,
      transactionCode: 'engine-start' as const,
      selectedVersion: 0x0200,
      readerEphemeralPublicKey: EphemeralKeyPair.generate().publicPoint,
      transactionId: Buffer.alloc(16, 1),
      readerId: car.reader('console').readerId,
    };
    const response = parseAuth0Response(parseResponseApdu(se.transmit(encodeAuth0Command(auth0))).data);
    expect(response.cryptogram).toHaveLength(16); // random: a fast EXCHANGE is then refused
    const exchange = Buffer.from([0x84, 0xc9, 0x00, 0x00, 0x08, ...Buffer.alloc(8)]);
    expect(parseResponseApdu(se.transmit(exchange)).sw).toBe(0x6985);
  });
});

describe('telematics wiring (§8)', () => {
  const server = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let seq = 0;
  const sign = (car: SimulatedVehicle, fields: Partial<TelematicsCommand> & Pick<TelematicsCommand, 'cmd'>) =>
    new CompactSign(
      Buffer.from(
        JSON.stringify({
          v: 1,
          vehicleId: car.vehicleIdentifierHex,
          seq: ++seq,
          keyListVersion: seq,
          iat: 1_750_000_000,
          ...fields,
        }),
      ),
    )
      .setProtectedHeader({ alg: 'ES256', typ: COMMAND_JWS_TYPE })
      .sign(server.privateKey);

  async function ackOf(car: SimulatedVehicle, jws: string): Promise<TelematicsAck> {
    const ack = await car.telematics!.receive(jws);
    const { payload } = await compactVerify(ack, car.publicKey.keyObject);
    return JSON.parse(Buffer.from(payload).toString('utf8')) as TelematicsAck;
  }

  it('ADD_KEY, SET_STATE and SET_ENTITLEMENTS drive the allow-list; acks carry the key-list digest', async () => {
    const car = new SimulatedVehicle();
    car.attachTelematics({ telematicsPublicKey: server.publicKey });
    const se = new SoftwareSecureElement();
    const key = se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    expect((await tap(se, car, 'door', 'unlock')).reason).toBe('key-unknown');

    const added = await ackOf(
      car,
      await sign(car, {
        cmd: 'ADD_KEY',
        keyId: key.keyId,
        endpointPublicKey: toHex(key.endpointPublicKey),
        role: 'friend',
        entitlements: toHex(encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY)),
      }),
    );
    expect(car.keyListLines()).toEqual([`${key.keyId}active`]);
    expect(added.keyListDigest).toBe(createHash('sha256').update(`${key.keyId}active`).digest('hex'));
    expect(added.keyListVersion).toBe(car.keyListVersion);
    expect((await tap(se, car, 'door', 'unlock')).event).toMatchObject({ result: 'granted', role: 'friend' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast' });

    await ackOf(car, await sign(car, { cmd: 'SET_STATE', keyId: key.keyId, state: 'suspended' }));
    expect(car.endpoint(key.keyId)).toMatchObject({ state: 'suspended', hasKpersistent: false });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-suspended' });

    await ackOf(car, await sign(car, { cmd: 'SET_STATE', keyId: key.keyId, state: 'active' }));
    await ackOf(
      car,
      await sign(car, {
        cmd: 'SET_ENTITLEMENTS',
        keyId: key.keyId,
        entitlements: toHex(encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_AND_DRIVE)),
      }),
    );
    expect(await tap(se, car, 'console', 'engine-start')).toMatchObject({ result: 'granted' });

    const revoked = await ackOf(car, await sign(car, { cmd: 'SET_STATE', keyId: key.keyId, state: 'terminated' }));
    expect(car.isDenied(key.keyId)).toBe(true);
    // The digest covers live keys only: with the one key revoked it is the digest of no lines.
    expect(car.keyListLines()).toEqual([`${key.keyId}terminated`]);
    expect(revoked.keyListDigest).toBe(createHash('sha256').update('').digest('hex'));
    expect(
      car.events
        .entries()
        .filter((e) => e.kind === 'key-list')
        .map((e) => e.change),
    ).toEqual(['added', 'kpersistent-deleted', 'state', 'state', 'entitlements', 'kpersistent-deleted', 'denied']);
  });

  it('a full SYNC re-adds a lost live key, takes the server states, revokes what it names terminated', async () => {
    const car = new SimulatedVehicle();
    car.attachTelematics({ telematicsPublicKey: server.publicKey });
    const se = new SoftwareSecureElement();
    const kept = se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    const lost = se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    const gone = se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    const entitlements = toHex(encodeEntitlements(ENTITLEMENT_PROFILES.UNLOCK_ONLY));
    for (const key of [kept, gone]) {
      await ackOf(
        car,
        await sign(car, {
          cmd: 'ADD_KEY',
          keyId: key.keyId,
          endpointPublicKey: toHex(key.endpointPublicKey),
          role: 'friend',
          entitlements,
        }),
      );
    }
    const synced = await ackOf(
      car,
      await sign(car, {
        cmd: 'SYNC',
        keys: [
          { keyId: kept.keyId, state: 'suspended' },
          {
            keyId: lost.keyId,
            state: 'active',
            role: 'friend',
            endpointPublicKey: toHex(lost.endpointPublicKey),
            entitlements,
          },
          { keyId: gone.keyId, state: 'terminated' },
        ],
      }),
    );
    expect(car.endpoint(kept.keyId)?.state).toBe('suspended');
    expect(car.endpoint(lost.keyId)?.state).toBe('active');
    expect(car.isDenied(gone.keyId)).toBe(true);
    expect(synced.keyListDigest).toBe(
      keyListDigest([
        { keyId: kept.keyId, state: 'suspended' },
        { keyId: lost.keyId, state: 'active' },
      ]),
    );
    // A SYNC cannot bring a revoked key back, and a malformed entry refuses the whole command.
    await ackOf(car, await sign(car, { cmd: 'SYNC', keys: [{ keyId: gone.keyId, state: 'active' }] }));
    expect(car.isDenied(gone.keyId)).toBe(true);
    await expect(
      car.telematics!.receive(await sign(car, { cmd: 'SYNC', keys: [{ keyId: 'zz', state: 'active' }] as never })),
    ).rejects.toThrow(TelematicsRejection);
  });

  it('refuses a malformed ADD_KEY (key id not matching the public key) and re-adding a revoked key', async () => {
    const car = new SimulatedVehicle();
    car.attachTelematics({ telematicsPublicKey: server.publicKey });
    const se = new SoftwareSecureElement();
    const key = se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    const entitlements = toHex(encodeEntitlements(ENTITLEMENT_PROFILES.OWNER));
    const endpointPublicKey = toHex(key.endpointPublicKey);
    await expect(
      car.telematics!.receive(
        await sign(car, { cmd: 'ADD_KEY', keyId: '00'.repeat(8), endpointPublicKey, entitlements }),
      ),
    ).rejects.toThrow(TelematicsRejection);
    await expect(
      car.telematics!.receive(await sign(car, { cmd: 'ADD_KEY', keyId: key.keyId, entitlements })),
    ).rejects.toThrow(/endpointPublicKey/);
    car.revokeEndpoint(key.keyId);
    await expect(
      car.telematics!.receive(await sign(car, { cmd: 'ADD_KEY', keyId: key.keyId, endpointPublicKey, entitlements })),
    ).rejects.toThrow(/deny-list/);
  });
});

describe('revocation relay in the owner private mailbox (§4.7, §5)', () => {
  it('carries a friend revocation to an offline car at the owner next transaction', async () => {
    const car = new SimulatedVehicle();
    const owner = new SoftwareSecureElement();
    const friend = new SoftwareSecureElement();
    const ownerKey = provisionKey(owner, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    const friendKey = provisionKey(friend, car, { role: 'friend', entitlements: ENTITLEMENT_PROFILES.UNLOCK_ONLY });
    await tap(friend, car, 'door', 'unlock');
    // The server revoked the friend at key-list version 7; the owner's phone carries it.
    owner.writePrivateMailbox(ownerKey.keyId, PRIVATE_MAILBOX_LAYOUT.keyListVersion.offset, encodeKeyListVersion(7n));
    owner.writePrivateMailbox(
      ownerKey.keyId,
      PRIVATE_MAILBOX_LAYOUT.revocationRelay.offset,
      encodeRevocationRelay([friendKey.keyIdentifier]),
    );
    expect(await tap(owner, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    expect(car.isDenied(friendKey.keyId)).toBe(true);
    expect(car.keyListVersion).toBe(7);
    expect(car.endpoint(friendKey.keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    expect(await tap(friend, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-revoked' });
    // The car reports what it revoked (once), so the server can complete the revocation.
    await tap(owner, car, 'door', 'unlock');
    expect(car.pendingReports).toEqual([
      { type: 'KEY_REVOKED_BY_RELAY', keyId: friendKey.keyId, occurredAt: expect.any(String) as string },
    ]);
  });

  it('a friend cannot relay revocations', async () => {
    const car = new SimulatedVehicle();
    const owner = new SoftwareSecureElement();
    const friend = new SoftwareSecureElement();
    const ownerKey = provisionKey(owner, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
    const friendKey = provisionKey(friend, car, { role: 'friend', entitlements: ENTITLEMENT_PROFILES.UNLOCK_ONLY });
    friend.writePrivateMailbox(friendKey.keyId, 0, encodeKeyListVersion(9n));
    friend.writePrivateMailbox(friendKey.keyId, 8, encodeRevocationRelay([ownerKey.keyIdentifier]));
    expect(await tap(friend, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    expect(car.isDenied(ownerKey.keyId)).toBe(false);
    expect(car.keyListVersion).toBe(0);
  });
});
