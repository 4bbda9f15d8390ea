import { ENTITLEMENT_PROFILES } from '../../src/protocol/entitlements.js';
import type { TransactionCode } from '../../src/protocol/transaction.js';
import { provisionKey } from '../../src/sim/nfc/provision-key.js';
import { tap } from '../../src/sim/nfc/tap.js';
import { SoftwareSecureElement } from '../../src/sim/secure-element/software-secure-element.js';
import { SimulatedVehicle } from '../../src/sim/vehicle/simulated-vehicle.js';
import type { ReaderLocation } from '../../src/sim/vehicle/vehicle-events.js';

type Tap = readonly [ReaderLocation, TransactionCode];

/**
 * A fresh car and phone sharing an owner key, with two genuine taps recorded on the air: the
 * first is a standard transaction, the second (same key, Kpersistent now set) a fast one. Fuzzers
 * mutate this real traffic.
 */
export async function ownerWithRecordedTaps(first: Tap, second: Tap) {
  const car = new SimulatedVehicle();
  const se = new SoftwareSecureElement();
  const key = provisionKey(se, car, { role: 'owner', entitlements: ENTITLEMENT_PROFILES.OWNER });
  const standard = await tap(se, car, ...first, { record: true });
  const fast = await tap(se, car, ...second, { record: true });
  return { car, se, key, standard, fast };
}
