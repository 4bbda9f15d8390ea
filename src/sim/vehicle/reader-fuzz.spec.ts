import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeResponseApdu, SW } from '../../protocol/apdu.js';
import { ENTITLEMENT_PROFILES } from '../../protocol/entitlements.js';
import type { PairingVerifier } from '../../protocol/telematics-messages.js';
import type { TransactionCode } from '../../protocol/transaction.js';
import { PAIRING_APDU_TIMEOUT_MS, SimulatedDevice } from '../device/simulated-device.js';
import type { ContactlessCard } from '../nfc/contactless.js';
import { NfcLink, type TranscriptEntry } from '../nfc/nfc-link.js';
import { provisionKey } from '../nfc/provision-key.js';
import { tap } from '../nfc/tap.js';
import { PAIRING_SCRYPT_TEST_COST } from '../pairing-test-cost.js';
import { SoftwareSecureElement } from '../secure-element/software-secure-element.js';
import { pairingVerifierFor, SimulatorPki } from '../sim-pki.js';
import type { ReaderLocation } from './vehicle-events.js';
import { SimulatedVehicle } from './simulated-vehicle.js';
import { READER_ACTIONS } from './vehicle-reader.js';
import { applyEdits, editArb, fuzzRuns, fuzzTimeoutMs, type Edit } from '../../../test/support/property-testing.js';
import { ownerWithRecordedTaps } from '../../../test/support/recorded-taps.js';

const RUNS = fuzzRuns(3_000);
const MITM_RUNS = fuzzRuns(1_000, 2);
const PAIRING_RUNS = fuzzRuns(60, 100);
const PASSWORD = '24681357';

/** What a hostile phone answers to one command: a recorded answer (mutated or not), noise, or a bare status. */
type Answer =
  { kind: 'recorded'; edits: Edit[] } | { kind: 'random'; bytes: Uint8Array } | { kind: 'status'; sw: number };

const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  fc.record({ kind: fc.constant('recorded' as const), edits: fc.array(editArb, { maxLength: 3 }) }),
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({
    kind: fc.constant('status' as const),
    sw: fc.constantFrom(SW.OK, SW.BAD_DATA, SW.WRONG_SEQUENCE, 0x6100, 0x61ff, 0x6cff, 0x9000, 0x0000),
  }),
);

/** A phone that answers from a script: the car under test must survive any of it. */
class HostileCard implements ContactlessCard {
  readonly #recorded = new Map<number, Buffer[]>();
  #script: Answer[] = [];
  #seen = new Map<number, number>();
  readonly received: Buffer[] = [];

  constructor(transcripts: ReadonlyArray<readonly TranscriptEntry[]>) {
    for (const transcript of transcripts) {
      for (const { command, response } of transcript) {
        if (!response) continue;
        const list = this.#recorded.get(command[1]) ?? [];
        list.push(response);
        this.#recorded.set(command[1], list);
      }
    }
  }

  play(script: Answer[]): void {
    this.#script = [...script];
    this.#seen = new Map();
  }

  pollingFrame(): boolean {
    return true;
  }

  transmit(command: Uint8Array): Buffer {
    this.received.push(Buffer.from(command));
    const answer = this.#script.shift() ?? { kind: 'status', sw: SW.BAD_DATA };
    if (answer.kind === 'status') return encodeResponseApdu(Buffer.alloc(0), answer.sw);
    if (answer.kind === 'random') return Buffer.from(answer.bytes);
    const ins = command[1] ?? 0;
    const occurrence = this.#seen.get(ins) ?? 0;
    this.#seen.set(ins, occurrence + 1);
    const candidates = this.#recorded.get(ins) ?? [encodeResponseApdu(Buffer.alloc(0), SW.OK)];
    return applyEdits(candidates[occurrence % candidates.length], answer.edits);
  }

  fieldLost(): void {}
}

const READER_AND_ACTION: fc.Arbitrary<[ReaderLocation, TransactionCode]> = fc.constantFrom(
  ...(Object.entries(READER_ACTIONS) as Array<[ReaderLocation, readonly TransactionCode[]]>).flatMap(
    ([reader, actions]) => actions.map((action): [ReaderLocation, TransactionCode] => [reader, action]),
  ),
);

describe('fuzzing the car readers with hostile phones (§4)', () => {
  it(
    `random and mutated answers never open, start or crash the car (${RUNS} runs)`,
    async () => {
      const { car, se, key, standard, fast } = await ownerWithRecordedTaps(
        ['console', 'engine-start'],
        ['door', 'unlock'],
      );
      const { keyIdentifier, endpointPublicKey } = key;
      expect([standard.result, fast.result]).toEqual(['granted', 'granted']);
      const hostile = new HostileCard([standard.transcript, fast.transcript]);
      const actuations = car.actuations;
      const identifying = [keyIdentifier, endpointPublicKey.subarray(1, 33)];

      await fc.assert(
        fc.asyncProperty(
          READER_AND_ACTION,
          fc.array(answerArb, { minLength: 1, maxLength: 8 }),
          async ([reader, action], script) => {
            hostile.play(script);
            const outcome = await tap(hostile, car, reader, action); // throwing fails the property
            // Without the endpoint's keys no answer authenticates: nothing is granted.
            if (outcome.result === 'granted') throw new Error(`granted ${action} to a hostile phone`);
            if (car.actuations !== actuations) throw new Error('the car actuated');
          },
        ),
        { numRuns: RUNS },
      );
      // The car never sent anything identifying the key to the hostile phone.
      for (const command of hostile.received) {
        if (identifying.some((secret) => command.includes(secret))) throw new Error('identifier sent to a stranger');
      }
      // No state corrupted: the genuine phone is still served, standard and fast.
      expect((await tap(se, car, 'console', 'engine-start')).result).toBe('granted');
      expect((await tap(se, car, 'door', 'unlock')).result).toBe('granted');
    },
    fuzzTimeoutMs(RUNS, 3),
  );

  it(
    `a genuine phone with its answers mutated in flight: no crash, and both ends recover (${MITM_RUNS} runs)`,
    async () => {
      const car = new SimulatedVehicle();
      const se = new SoftwareSecureElement();
      provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
      await fc.assert(
        fc.asyncProperty(
          READER_AND_ACTION,
          fc.nat(12),
          fc.array(editArb, { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          async ([reader, action], target, edits, onCommand) => {
            let exchange = 0;
            const mutate = (bytes: Buffer) => (exchange++ === target ? applyEdits(bytes, edits) : bytes);
            const link = new NfcLink(se, onCommand ? { interceptCommand: mutate } : { interceptResponse: mutate });
            const outcome = await tap(se, car, reader, action, { link });
            if (!['granted', 'denied', 'failed'].includes(outcome.result)) throw new Error(`result ${outcome.result}`);
          },
        ),
        { numRuns: MITM_RUNS },
      );
      expect((await tap(se, car, 'console', 'engine-start')).result).toBe('granted');
      expect((await tap(se, car, 'door', 'unlock')).result).toBe('granted');
    },
    fuzzTimeoutMs(MITM_RUNS, 6),
  );
});

describe('fuzzing the car pairing reader (§3)', () => {
  let pki: SimulatorPki;
  let verifier: PairingVerifier;

  beforeAll(async () => {
    pki = await SimulatorPki.create();
    verifier = await pairingVerifierFor(PASSWORD, PAIRING_SCRYPT_TEST_COST);
  });

  it(
    `hostile answers never add a key, keep the attempt counter within its limit, and a genuine phone still pairs (${PAIRING_RUNS} runs)`,
    async () => {
      const phone = () => {
        const device = new SimulatedDevice({ instanceCa: pki.instanceCa(), deviceOem: pki.localRegistrar() });
        device.enterPairingPassword(PASSWORD);
        return device;
      };
      // A genuine pairing recorded on another car, to mutate.
      const recordedCar = await pki.pairableVehicle();
      recordedCar.installPairingVerifier(verifier);
      const recordedLink = new NfcLink(phone().secureElement, { record: true, timeoutMs: PAIRING_APDU_TIMEOUT_MS });
      const recorded = await recordedCar.pairingReader.pair(recordedLink);
      expect(recorded).toMatchObject({ result: 'paired' });
      const hostile = new HostileCard([recordedLink.transcript]);

      const car = await pki.pairableVehicle();
      car.installPairingVerifier(verifier);
      await fc.assert(
        fc.asyncProperty(fc.array(answerArb, { minLength: 1, maxLength: 10 }), async (script) => {
          if (car.pairingMode.lockedOut) car.installPairingVerifier(verifier);
          hostile.play(script);
          const event = await car.pairingReader.pair(new NfcLink(hostile)); // throwing fails the property
          if (event.result === 'paired') throw new Error('paired with a hostile phone');
          if (car.endpoints().length > 0) throw new Error('a key was added');
          if (car.pairingMode.failedAttempts > 7) throw new Error('attempt counter past its limit');
        }),
        { numRuns: PAIRING_RUNS },
      );
      car.installPairingVerifier(verifier);
      const genuine = await phone().pairWith(car);
      expect(genuine.result).toBe('paired');
      expect(car.endpoints()).toHaveLength(1);
    },
    fuzzTimeoutMs(PAIRING_RUNS, 40),
  );
});
