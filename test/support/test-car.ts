import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TelematicsUnit } from '../../src/sim/vehicle/telematics-unit.js';
import { keyListDigest, type TelematicsCommand } from '../../src/protocol/telematics-messages.js';
import { TEST_VIN, adminRequest, newVehicleKeyPair, type SystemEndpoints, type TestSystem } from './harness.js';
import { activeOwnerKey } from './owner-key.js';

export type CarBehaviour = 'online' | 'offline' | 'apply-then-drop' | 'accept-later';

/**
 * A car's telematics endpoint for integration tests: a real HTTPS server (certificate from the
 * test PKI's root) in front of the simulator's TelematicsUnit, with switches to go offline,
 * lose a response after applying, or answer 202 and post the ack later over mTLS.
 */
export class TestCar {
  behaviour: CarBehaviour = 'online';
  /** How long the car holds its answer after applying a command (a slow cellular link). */
  answerDelayMs = 0;
  readonly received: number[] = [];
  /** When each command arrived (ms since the epoch), parallel to `received`. */
  readonly receivedAt: number[] = [];
  readonly rawCommands: string[] = [];
  readonly appliedCommands: TelematicsCommand[] = [];
  readonly pendingAcks: string[] = [];
  /** The key states the commands set, as a car keeps them: the source of the ack's key-list digest. */
  readonly keyStates = new Map<string, string>();
  /** Every ack the car answered with (200), in order, for replay tests. */
  readonly sentAcks: string[] = [];
  unit!: TelematicsUnit;
  vin!: string;
  vehicleIdentifier!: string;
  certificatePem!: string;
  private readonly keys = newVehicleKeyPair();
  private server?: Server;
  port = 0;

  static async provision(system: SystemEndpoints, n: number): Promise<TestCar> {
    const car = new TestCar();
    await car.listen(system);
    const token = await system.operatorToken(['vehicles:write']);
    const res = await adminRequest<{
      vehicleIdentifier: string;
      certificatePem: string;
      trust: { telematicsPublicKeyPem: string };
    }>(system, 'POST', '/v1/vehicles', {
      token,
      body: {
        vin: TEST_VIN(n),
        telematicsUrl: `https://127.0.0.1:${car.port}/commands`,
        publicKey: car.keys.publicKeyPem,
      },
    });
    if (res.status !== 201) throw new Error(`provisioning failed: ${res.status} ${res.text}`);
    car.vin = TEST_VIN(n);
    car.vehicleIdentifier = res.body.vehicleIdentifier;
    car.certificatePem = res.body.certificatePem;
    car.unit = new TelematicsUnit({
      vehicleIdentifier: res.body.vehicleIdentifier,
      vehiclePrivateKey: car.keys.privateKey,
      telematicsPublicKey: res.body.trust.telematicsPublicKeyPem,
      apply: (command) => car.apply(command),
      keyListDigest: () => keyListDigest([...car.keyStates].map(([keyId, state]) => ({ keyId, state }))),
    });
    return car;
  }

  private apply(command: TelematicsCommand): void {
    this.appliedCommands.push(command);
    const carState = (state: string | undefined) => (state === 'terminating' ? 'terminated' : (state ?? 'active'));
    const set = (keyId: string, state: string) => {
      if (this.keyStates.get(keyId) !== 'terminated') this.keyStates.set(keyId, state);
    };
    if ((command.cmd === 'ADD_KEY' || command.cmd === 'SET_STATE') && command.keyId) {
      set(command.keyId, carState(command.state));
    }
    if (command.cmd === 'SYNC') for (const key of command.keys ?? []) set(key.keyId, key.state);
  }

  get identity() {
    return {
      certPem: this.certificatePem,
      keyPem: this.keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
  }

  private async listen(system: SystemEndpoints): Promise<void> {
    this.server = createServer(
      { cert: system.pki.set.telematicsGatewayCert, key: system.pki.set.telematicsGatewayKey },
      (req, res) => {
        if (this.behaviour === 'offline') {
          req.socket.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const { command } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { command: string };
          const seq = (JSON.parse(Buffer.from(command.split('.')[1], 'base64url').toString('utf8')) as { seq: number })
            .seq;
          this.received.push(seq);
          this.receivedAt.push(Date.now());
          this.rawCommands.push(command);
          const behaviour = this.behaviour;
          this.unit.receive(command).then(
            async (ack) => {
              if (this.answerDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.answerDelayMs));
              if (behaviour === 'apply-then-drop') {
                this.behaviour = 'online';
                req.socket.destroy();
              } else if (behaviour === 'accept-later') {
                this.pendingAcks.push(ack);
                res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
              } else {
                this.sentAcks.push(ack);
                res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ack }));
              }
            },
            (error: Error) => res.writeHead(400).end(JSON.stringify({ error: error.message })),
          );
        });
      },
    );
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** The cars of one test file: provisioned on demand, closed together at the end. */
export class TestCarFleet {
  readonly cars: TestCar[] = [];

  constructor(private readonly system: () => TestSystem) {}

  async provision(n: number): Promise<TestCar> {
    const car = await TestCar.provision(this.system(), n);
    this.cars.push(car);
    return car;
  }

  /** A car with an owner key paired, registered and activated by the car's ADD_KEY ack. */
  async withOwner(n: number): Promise<{ car: TestCar; keyId: string }> {
    const car = await this.provision(n);
    const owner = await activeOwnerKey(this.system(), car);
    return { car, keyId: owner.keyId };
  }

  async close(): Promise<void> {
    await Promise.all(this.cars.map((car) => car.close()));
  }
}
