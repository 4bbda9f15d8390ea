import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readPkiSet } from '../src/pki/dev-pki.js';
import { keyListDigest, type TelematicsCommand } from '../src/protocol/telematics-messages.js';
import { DeviceOemBackend } from '../src/sim/device-oem/device-oem-backend.js';
import { TelematicsEndpoint } from '../src/sim/vehicle/telematics-endpoint.js';
import { TelematicsUnit } from '../src/sim/vehicle/telematics-unit.js';

/**
 * The world outside the server for the revocation benchmark, in its own process: the cars'
 * telematics endpoint (one TelematicsUnit per car: verifies the signed command, applies it in
 * `seq` order, answers with a signed ack carrying its key-list digest) and the mocked Device OEM
 * backend that verifies the server's signed notifications. Driven over IPC by bench/revocation.ts:
 *
 * - `{ type: 'cars', vins }` → creates the cars' key pairs here (private keys never leave this
 *   process) and answers `{ type: 'cars', publicKeys }`;
 * - `{ type: 'attach', cars: [{ vin, vehicleIdentifier, telematicsPublicKeyPem, keyIds }] }` →
 *   the cars pin the server key and hold their keys active; answers `{ type: 'attached' }`;
 * - every SET_STATE the cars apply is reported, batched, as `{ type: 'applied', items: [[keyId,
 *   wall-clock ms]] }`, stamped when the car applied the command and signed its ack.
 */

type FleetMessage =
  | { type: 'cars'; vins: string[] }
  | {
      type: 'attach';
      cars: Array<{ vin: string; vehicleIdentifier: string; telematicsPublicKeyPem: string; keyIds: string[] }>;
    };

interface FleetCar {
  readonly privateKey: KeyObject;
  unit?: TelematicsUnit;
  readonly keys: Map<string, string>;
}

const send = (message: unknown) => process.send!(message);
const wallClock = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const pkiDir = process.argv[2];
  if (!pkiDir) throw new Error('usage: car-fleet <pki dir>');
  const set = readPkiSet(pkiDir);
  const cars = new Map<string, FleetCar>();
  let applied: Array<[string, number]> = [];

  const endpoint = new TelematicsEndpoint({
    certPem: set.telematicsGatewayCert,
    keyPem: set.telematicsGatewayKey,
    unitFor: (vin) => cars.get(vin)?.unit,
    isOnline: () => true,
  });
  const telematicsPort = await endpoint.listen();
  const deviceOem = DeviceOemBackend.fromPki(set, {
    vehicleOemBaseUrl: 'https://127.0.0.1:9',
    port: 0,
    // A long run keeps no logs of calls and notifications, only the per-key state it needs.
    history: 0,
  });
  const deviceOemPort = await deviceOem.listen();

  const flush = setInterval(() => {
    if (applied.length === 0) return;
    send({ type: 'applied', items: applied });
    applied = [];
  }, 10);
  flush.unref();

  process.on('message', (message: FleetMessage) => {
    switch (message.type) {
      case 'cars': {
        const publicKeys = message.vins.map((vin) => {
          const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
          cars.set(vin, { privateKey: pair.privateKey, keys: new Map() });
          return pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
        });
        send({ type: 'cars', publicKeys });
        break;
      }
      case 'attach':
        for (const spec of message.cars) {
          const car = cars.get(spec.vin);
          if (!car) throw new Error(`unknown car ${spec.vin}`);
          for (const keyId of spec.keyIds) car.keys.set(keyId, 'active');
          car.unit = new TelematicsUnit({
            vehicleIdentifier: spec.vehicleIdentifier,
            vehiclePrivateKey: car.privateKey,
            telematicsPublicKey: spec.telematicsPublicKeyPem,
            apply: (command) => apply(car, command),
            keyListDigest: () => keyListDigest([...car.keys].map(([keyId, state]) => ({ keyId, state }))),
            // The fleet reports what it applied to the load generator; it keeps no history of its own.
            appliedHistory: 0,
          });
        }
        send({ type: 'attached' });
        break;
    }
  });

  function apply(car: FleetCar, command: TelematicsCommand): void {
    if (command.cmd !== 'SET_STATE' || !command.keyId) return;
    const state = command.state === 'terminating' ? 'terminated' : (command.state ?? 'active');
    if (car.keys.get(command.keyId) !== 'terminated') car.keys.set(command.keyId, state);
    applied.push([command.keyId, wallClock()]);
  }

  send({ type: 'ready', telematicsPort, deviceOemPort });
}

main().catch((error: unknown) => {
  process.stderr.write(`car-fleet: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
