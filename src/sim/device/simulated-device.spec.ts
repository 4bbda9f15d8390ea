import { beforeAll, describe, expect, it } from 'vitest';
import { SW } from '../../protocol/apdu.js';
import { PAIRING_SCRYPT_TEST_COST } from '../pairing-test-cost.js';
import { pairingVerifierFor, SimulatorPki } from '../sim-pki.js';
import { SimulatedDevice } from './simulated-device.js';

const PASSWORD = '31415926';

describe('SimulatedDevice: owner pairing, registration and the first tap (§3)', () => {
  let pki: SimulatorPki;

  beforeAll(async () => {
    pki = await SimulatorPki.create();
  });

  async function setup() {
    const car = await pki.pairableVehicle();
    const registrar = pki.localRegistrar();
    const device = new SimulatedDevice({ instanceCa: pki.instanceCa(), deviceOem: registrar, model: 'Phone 17' });
    car.installPairingVerifier(await pairingVerifierFor(PASSWORD, PAIRING_SCRYPT_TEST_COST));
    return { car, device, registrar };
  }

  it('pairs, registers, and the KTS receipt activates the key at the first standard transaction', async () => {
    const { car, device, registrar } = await setup();
    device.enterPairingPassword(PASSWORD);
    const paired = await device.pairWith(car);
    expect(paired).toMatchObject({ result: 'paired', reason: 'none', sw: SW.OK });
    const keyId = paired.keyId!;
    expect(car.endpoint(keyId)).toMatchObject({ role: 'owner', state: 'pending', pairedLocally: true });
    expect(car.pairingMode).toEqual({ failedAttempts: 0, lockedOut: false });
    expect(device.secureElement.pairingState).toBe('none');

    // Pending: no unlock before the receipt (or ADD_KEY).
    expect(await device.tap(car, 'door', 'unlock')).toMatchObject({ result: 'denied', reason: 'key-pending' });
    expect(car.ecuState.locked).toBe(true);

    const walletKey = await device.registerKey(keyId);
    expect(walletKey).toMatchObject({ keyId, state: 'registered', serverState: 'pending' });
    expect(registrar.registrations).toHaveLength(1);

    const first = await device.tap(car, 'door', 'unlock');
    expect(first).toMatchObject({ result: 'granted', transaction: 'standard', keyId });
    expect(car.endpoint(keyId)?.state).toBe('active');
    expect(
      car.events.entries().some((e) => e.kind === 'key-list' && e.source === 'kts-receipt' && e.state === 'active'),
    ).toBe(true);
    expect(await device.tap(car, 'console', 'engine-start')).toMatchObject({ result: 'granted' });
    expect(car.ecuState.engineRunning).toBe(true);
    expect(await device.tap(car, 'door', 'lock')).toMatchObject({ result: 'granted', transaction: 'fast' });
  });
});
