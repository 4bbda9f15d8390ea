import { describe, expect, it } from 'vitest';
import { encodeResponseApdu, parseResponseApdu, SW } from '../../protocol/apdu.js';
import { ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import { encodeSelectResponse, INS, PROTOCOL_VERSION_1, PROTOCOL_VERSION_2 } from '../../protocol/transaction.js';
import type { ContactlessCard } from '../nfc/contactless.js';
import type { ApduExchangeInfo, TranscriptEntry } from '../nfc/nfc-link.js';
import { provisionKey } from '../nfc/provision-key.js';
import { tap } from '../nfc/tap.js';
import { SoftwareSecureElement, type SoftwareSecureElementOptions } from '../secure-element/software-secure-element.js';
import { SimulatedVehicle, type SimulatedVehicleOptions } from './simulated-vehicle.js';

function pair(carOptions: SimulatedVehicleOptions = {}, seOptions: SoftwareSecureElementOptions = {}) {
  const car = new SimulatedVehicle(carOptions);
  const se = new SoftwareSecureElement(seOptions);
  const key = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
  const secrets = [key.keyIdentifier, key.endpointPublicKey.subarray(1, 33)];
  const reveals = (bytes: Buffer | undefined) => secrets.some((secret) => bytes?.includes(secret) ?? false);
  return { car, se, key, reveals };
}

/** A fake phone that answers each instruction with what a real one answered before. */
class ReplayingCard implements ContactlessCard {
  readonly #answers = new Map<number, Buffer>();

  constructor(transcript: readonly TranscriptEntry[]) {
    for (const { command, response } of transcript) if (response) this.#answers.set(command[1], response);
  }

  pollingFrame(): boolean {
    return true;
  }

  transmit(command: Uint8Array): Buffer {
    return this.#answers.get(command[1]) ?? encodeResponseApdu(Buffer.alloc(0), SW.BAD_DATA);
  }

  fieldLost(): void {}
}

describe('replay', () => {
  it('the identifier never crosses the air in clear, even in a genuine transaction', async () => {
    const { car, se, reveals } = pair();
    const standard = await tap(se, car, 'door', 'unlock', { record: true });
    const fast = await tap(se, car, 'door', 'unlock', { record: true });
    expect([standard.transaction, fast.transaction]).toEqual(['standard', 'fast']);
    for (const entry of [...standard.transcript, ...fast.transcript]) {
      expect(reveals(entry.command) || reveals(entry.response)).toBe(false);
    }
  });

  it('recorded reader commands replayed to the applet: AUTH1 and EXCHANGE fail, nothing is revealed', async () => {
    const { car, se, key, reveals } = pair();
    const standard = await tap(se, car, 'door', 'unlock', { record: true });
    const fast = await tap(se, car, 'door', 'unlock', { record: true });
    const kpersistentBefore = se.key(key.keyId).hasKpersistent;
    for (const transcript of [standard.transcript, fast.transcript]) {
      se.pollingFrame(car.reader('door').pollingFrame);
      const statuses = transcript.map(({ command }) => {
        const response = se.transmit(command);
        expect(reveals(response)).toBe(false);
        return [command[1], parseResponseApdu(response).sw];
      });
      // SELECT and AUTH0 are answered (fresh ephemeral); what needs the old session keys is refused.
      expect(statuses.slice(0, 2)).toEqual([
        [INS.SELECT, SW.OK],
        [INS.AUTH0, SW.OK],
      ]);
      for (const [ins, status] of statuses.slice(2)) {
        if (ins === INS.AUTH1) expect(status).toBe(SW.BAD_DATA);
        else expect(status).not.toBe(SW.OK);
      }
    }
    expect(se.key(key.keyId).hasKpersistent).toBe(kpersistentBefore);
    expect(se.outcomes).toHaveLength(2); // only the two genuine transactions
  });

  it('recorded phone responses replayed to the car unlock nothing', async () => {
    const { car, se } = pair();
    const standard = await tap(se, car, 'door', 'unlock', { record: true });
    const fast = await tap(se, car, 'door', 'lock', { record: true });
    const granted = car.actuations;
    const replayedStandard = await tap(new ReplayingCard(standard.transcript), car, 'door', 'unlock');
    expect(replayedStandard).toMatchObject({ result: 'failed', reason: 'secure-channel-failure' });
    expect(replayedStandard.keyId).toBeUndefined();
    // The fast cryptogram was bound to the old transaction id and ephemerals: no match, and the
    // recording has no AUTH1 answer.
    const replayedFast = await tap(new ReplayingCard([...fast.transcript]), car, 'door', 'unlock');
    expect(replayedFast).toMatchObject({ result: 'failed', reason: 'device-refused', transaction: 'standard' });
    expect(car.actuations).toBe(granted);
    expect(car.ecuState.locked).toBe(true);
  });
});

describe('reader authentication (§4.3)', () => {
  it('a car with the wrong vehicle key gets a bare 6A80 to AUTH1: no key identifier, no Kpersistent change', async () => {
    const { car, se, key, reveals } = pair();
    await tap(se, car, 'door', 'unlock');
    const rogue = new SimulatedVehicle({ vehicleIdentifier: car.vehicleIdentifier });
    rogue.enrollEndpoint({
      endpointPublicKey: key.endpointPublicKey,
      role: 'owner',
      entitlements: ENTITLEMENT_PROFILES.OWNER,
    });
    const attempt = await tap(se, rogue, 'door', 'unlock', { record: true });
    expect(attempt).toMatchObject({ result: 'failed', reason: 'device-refused', transaction: 'standard' });
    const auth1 = attempt.transcript.find((entry) => entry.command[1] === INS.AUTH1);
    expect(auth1?.response).toEqual(Buffer.from([0x6a, 0x80]));
    expect(attempt.transcript.some((entry) => reveals(entry.response))).toBe(false);
    expect(rogue.actuations).toBe(0);
    // The genuine car's Kpersistent is untouched: still fast.
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });
});

describe('integrity of the secure channel (§4.5)', () => {
  type Target = { name: string; ins: number; direction: 'command' | 'response'; transaction: 'standard' | 'fast' };
  const targets: Target[] = [
    { name: 'AUTH1', ins: INS.AUTH1, direction: 'response', transaction: 'standard' },
    { name: 'EXCHANGE', ins: INS.EXCHANGE, direction: 'command', transaction: 'standard' },
    { name: 'EXCHANGE', ins: INS.EXCHANGE, direction: 'response', transaction: 'standard' },
    { name: 'EXCHANGE', ins: INS.EXCHANGE, direction: 'command', transaction: 'fast' },
    { name: 'EXCHANGE', ins: INS.EXCHANGE, direction: 'response', transaction: 'fast' },
  ];

  it.each(targets)(
    'a bit flip in the $name $direction ($transaction), from header to MAC and status word, ends the session',
    async (target) => {
      const { car, se, key } = pair();
      await tap(se, car, 'door', 'unlock');
      expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast', apduCount: 4 });
      if (target.transaction === 'standard') car.forgetKpersistent(key.keyId);
      const probe = await tap(se, car, 'door', 'unlock', { record: true });
      const entry = probe.transcript.find((e) => e.command[1] === target.ins)!;
      const length = (target.direction === 'command' ? entry.command : entry.response!).length;
      const positions = [
        ...new Set([0, 1, 2, 3, 4, 5, 6, length >> 1, length - 9, length - 3, length - 2, length - 1]),
      ];

      for (const position of positions.filter((p) => p >= 0 && p < length)) {
        if (target.transaction === 'standard') car.forgetKpersistent(key.keyId);
        const granted = car.actuations;
        let phaseAfterFlip: string | undefined;
        const flip = (bytes: Buffer, info: ApduExchangeInfo): Buffer => {
          if (info.ins !== target.ins) return bytes;
          const out = Buffer.from(bytes);
          out[position] ^= 1 << (position % 8);
          return out;
        };
        const watch = (bytes: Buffer, info: ApduExchangeInfo): Buffer => {
          if (info.ins === target.ins) phaseAfterFlip = se.sessionPhase;
          return bytes;
        };
        const successes = se.outcomes.filter((o) => o.success).length;
        const outcome = await tap(
          se,
          car,
          'door',
          'unlock',
          target.direction === 'command'
            ? { interceptCommand: flip, interceptResponse: watch }
            : { interceptResponse: flip },
        );
        expect(outcome, `flip at ${position}`).toMatchObject({ result: 'failed', transaction: target.transaction });
        expect(['secure-channel-failure', 'device-refused']).toContain(outcome.reason);
        expect(car.actuations).toBe(granted);
        if (target.direction === 'command') expect(phaseAfterFlip).toBe('selected'); // the applet ended the session
        expect(se.outcomes.filter((o) => o.success)).toHaveLength(successes); // the phone shows no success
        expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
      }
    },
  );
});

describe('version downgrade (§4.2)', () => {
  it('no version in common: the car stops before AUTH0', async () => {
    const { car, se } = pair({ supportedVersions: [PROTOCOL_VERSION_1] }, { supportedVersions: [PROTOCOL_VERSION_2] });
    const outcome = await tap(se, car, 'door', 'unlock');
    expect(outcome).toMatchObject({ result: 'failed', reason: 'no-common-version', apduCount: 1 });
  });

  it('an attacker who strips 2.0 from the SELECT response gets a failed transaction: device versions are bound into the keys', async () => {
    const { car, se } = pair();
    await tap(se, car, 'door', 'unlock');
    const downgraded = await tap(se, car, 'door', 'unlock', {
      interceptResponse: (response, info) =>
        info.ins === INS.SELECT ? encodeResponseApdu(encodeSelectResponse([PROTOCOL_VERSION_1]), SW.OK) : response,
      record: true,
    });
    const auth0 = downgraded.transcript.find((e) => e.command[1] === INS.AUTH0)!;
    expect(auth0.command.includes(Buffer.from([0x5c, 0x02, 0x01, 0x00]))).toBe(true); // the car selected 1.0
    expect(downgraded).toMatchObject({ result: 'failed', reason: 'secure-channel-failure', transaction: 'standard' });
    expect(car.actuations).toBe(1);
  });
});

describe('revoked and suspended endpoints (§4.4, §5)', () => {
  it('a revoked endpoint presenting its old Kpersistent gets nothing, and the log says why', async () => {
    const { car, se, key } = pair();
    await tap(se, car, 'door', 'unlock');
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ transaction: 'fast' });
    car.setEndpointState(key.keyId, 'terminated');
    expect(car.endpoint(key.keyId)).toMatchObject({ state: 'terminated', hasKpersistent: false });
    expect(se.key(key.keyId).hasKpersistent).toBe(true); // the phone still presents its cryptogram
    const granted = car.actuations;
    const attempt = await tap(se, car, 'door', 'unlock');
    expect(attempt).toMatchObject({
      result: 'denied',
      reason: 'key-revoked',
      transaction: 'standard',
      keyId: key.keyId,
    });
    expect(car.events.lastTransaction()).toMatchObject({ result: 'denied', reason: 'key-revoked', role: 'owner' });
    expect(se.outcomes.at(-1)).toMatchObject({ success: false, reason: 'key-suspended-or-revoked' });
    expect(car.actuations).toBe(granted);
    const keyListChanges = car.events.entries().filter((e) => e.kind === 'key-list');
    expect(keyListChanges.map((e) => e.change)).toEqual(['added', 'kpersistent-deleted', 'denied']);
  });

  it('a suspended key is refused (Kpersistent deleted at once); resumed, it is accepted', async () => {
    const { car, se, key } = pair();
    await tap(se, car, 'door', 'unlock');
    car.setEndpointState(key.keyId, 'suspended');
    expect(car.endpoint(key.keyId)?.hasKpersistent).toBe(false);
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-suspended' });
    car.setEndpointState(key.keyId, 'active');
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'standard' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });

  it('a pending owner (paired, not yet activated) is refused', async () => {
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement();
    provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER, carState: 'pending' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-pending' });
  });

  it('an endpoint the car never enrolled is refused as unknown', async () => {
    const car = new SimulatedVehicle();
    const se = new SoftwareSecureElement();
    se.createKey({ vehicleIdentifier: car.vehicleIdentifier, vehiclePublicKey: car.publicPoint });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-unknown' });
    expect(car.events.lastTransaction()?.keyId).toBeUndefined();
  });
});
