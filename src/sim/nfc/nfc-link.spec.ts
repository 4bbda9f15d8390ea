import { describe, expect, it } from 'vitest';
import { decodeCarTci, parseEcpFrame, READER_LOCATION } from '../../protocol/ecp.js';
import { ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import { INS } from '../../protocol/transaction.js';
import { SoftwareSecureElement } from '../secure-element/software-secure-element.js';
import { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import { NfcLink, NfcLinkError, tearAt, type TearPoint } from './nfc-link.js';
import { provisionKey } from './provision-key.js';
import { tap } from './tap.js';

function pair() {
  const car = new SimulatedVehicle();
  const se = new SoftwareSecureElement();
  const key = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
  return { car, se, key };
}

/** Deterministic [0, 1) sequence (mulberry32) for the probabilistic field loss. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('ECP polling (§4.1)', () => {
  it('each reader wakes the phone with a car frame: express bit, its location, the vehicle as reader group', () => {
    const car = new SimulatedVehicle({ manufacturer: 0x123 });
    for (const location of ['door', 'console', 'trunk'] as const) {
      const frame = parseEcpFrame(car.reader(location).pollingFrame);
      expect(frame).toMatchObject({
        presentAutomatically: true,
        noAuthRequired: true,
        readerGroupId: car.vehicleIdentifier,
      });
      expect(decodeCarTci(frame.tci)).toEqual({ manufacturer: 0x123, location: READER_LOCATION[location] });
    }
    expect(parseEcpFrame(new SimulatedVehicle({ expressMode: false }).reader('door').pollingFrame).noAuthRequired).toBe(
      false,
    );
  });

  it('a link refuses APDUs until the reader has polled', async () => {
    const link = new NfcLink(new SoftwareSecureElement());
    await expect(link.transceive(Buffer.from([0x00, 0xa4, 0x04, 0x00]))).rejects.toThrow(NfcLinkError);
  });
});

describe('tearing: the field is lost mid-transaction', () => {
  const cases: { name: string; ins: number; point: TearPoint; fast: boolean }[] = [
    { name: 'AUTH1 never arrives', ins: INS.AUTH1, point: 'command', fast: false },
    { name: 'the AUTH1 response never returns', ins: INS.AUTH1, point: 'response', fast: false },
    { name: 'EXCHANGE never arrives', ins: INS.EXCHANGE, point: 'command', fast: false },
    { name: 'the EXCHANGE response never returns', ins: INS.EXCHANGE, point: 'response', fast: false },
    { name: 'the fast EXCHANGE never arrives', ins: INS.EXCHANGE, point: 'command', fast: true },
    { name: 'the fast EXCHANGE response never returns', ins: INS.EXCHANGE, point: 'response', fast: true },
    { name: 'CONTROL FLOW never arrives', ins: INS.CONTROL_FLOW, point: 'command', fast: true },
  ];

  it.each(cases)('$name: both sides stay consistent and the next tap succeeds', async ({ ins, point, fast }) => {
    const { car, se, key } = pair();
    if (fast) await tap(se, car, 'door', 'lock');
    const granted = car.actuations;
    const link = new NfcLink(se, { tear: tearAt(ins, point), timeoutMs: 0 });
    const event = await car.reader('door').transact(link, 'unlock');
    expect(se.sessionPhase).toBe('idle'); // the applet lost power with the field: no half session
    expect(link.fieldOn).toBe(false);
    if (ins === INS.CONTROL_FLOW) {
      // The car had already decided and unlocked; only the phone's banner is missing.
      expect(event).toMatchObject({ result: 'granted', deviceNotified: false });
      expect(car.actuations).toBe(granted + 1);
    } else {
      expect(event).toMatchObject({ result: 'failed', reason: 'field-lost', transaction: fast ? 'fast' : 'standard' });
      expect(car.actuations).toBe(granted); // the half transaction was discarded
      expect(car.ecuState.locked).toBe(true);
    }
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    // …and the one after is fast: both sides hold the same Kpersistent again.
    expect(await tap(se, car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast' });
    expect(car.endpoint(key.keyId)?.hasKpersistent).toBe(true);
  });

  it('random field loss (seeded) never leaves an inconsistent state', async () => {
    const { car, se } = pair();
    const random = seededRandom(7);
    const outcomes: string[] = [];
    for (let i = 0; i < 40; i++) {
      const outcome = await tap(se, car, 'door', i % 2 ? 'lock' : 'unlock', {
        fieldLossProbability: 0.15,
        random,
        timeoutMs: 0,
      });
      outcomes.push(outcome.result === 'granted' ? 'granted' : outcome.reason);
    }
    expect(new Set(outcomes)).toEqual(new Set(['granted', 'field-lost']));
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted' });
    expect(await tap(se, car, 'door', 'unlock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });
});

describe('latency and timeouts', () => {
  it('adds the air latency to every frame', async () => {
    const { car, se } = pair();
    const outcome = await tap(se, car, 'door', 'unlock', { latencyMs: 2 });
    expect(outcome.result).toBe('granted');
    // Poll + 5 APDUs, each frame one way then back.
    expect(outcome.wallMicros).toBeGreaterThanOrEqual((1 + 5 * 2) * 2_000 - 1_000);
  });

  it('an APDU answered after the per-APDU timeout fails the tap with `timeout`, and the next tap succeeds', async () => {
    const { car, se } = pair();
    const late = await tap(se, car, 'door', 'unlock', { latencyMs: 3, timeoutMs: 5 });
    expect(late).toMatchObject({ result: 'failed', reason: 'timeout', apduCount: 1 });
    expect(se.sessionPhase).toBe('idle');
    expect(await tap(se, car, 'door', 'unlock', { latencyMs: 1, timeoutMs: 50 })).toMatchObject({ result: 'granted' });
  });
});
