import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import {
  importPublicKey,
  issueCertificate,
  loadCertificateAuthority,
  type CertificateAuthority,
} from '../pki/certificate-issuer.js';
import { createPkiSet, type PkiSet } from '../pki/dev-pki.js';
import { EndpointChainVerifier } from '../pki/endpoint-chain.js';
import { ecdsaSign } from '../protocol/crypto/p256.js';
import { encodeKtsReceipt, ktsReceiptMessage } from '../protocol/kts-receipt.js';
import { deriveVerifierFromPassword, type ScryptCost } from '../protocol/spake2plus-password.js';
import type { PairingVerifier } from '../protocol/telematics-messages.js';
import type { KeyRegistration, KeyRegistrationRequest } from './device-oem/device-oem-backend.js';
import type { KeyRegistrar } from './device/simulated-device.js';
import { InstanceCertificateAuthority } from './secure-element/instance-certificate-authority.js';
import { SimulatedVehicle, type SimulatedVehicleOptions } from './vehicle/simulated-vehicle.js';

/** A vehicle certificate lives as long as the server's (15 years). */
const VEHICLE_CERTIFICATE_DAYS = 15 * 365;

/**
 * The PKI the simulators need without a server: the phones' Instance CA (§2) and vehicle
 * certificates from the Vehicle OEM root, as the server issues them at provisioning. Tests,
 * demos and benchmarks use it to pair a car and a phone offline; the end-to-end path gets the
 * vehicle certificate from `POST /v1/vehicles` instead.
 */
export class SimulatorPki {
  readonly #root: CertificateAuthority;

  private constructor(
    readonly set: PkiSet,
    root: CertificateAuthority,
  ) {
    this.#root = root;
  }

  static async create(set?: PkiSet): Promise<SimulatorPki> {
    const pki = set ?? (await createPkiSet());
    return new SimulatorPki(pki, await loadCertificateAuthority(pki.vehicleOemRootCert, pki.vehicleOemRootKey));
  }

  /** The Device OEM's Instance CA for this automaker, as a phone's SE holds it. */
  instanceCa(): InstanceCertificateAuthority {
    return new InstanceCertificateAuthority({
      certificatePem: this.set.instanceCaCert,
      privateKeyPem: this.set.instanceCaKey,
      deviceOemCrossCertificatePem: this.set.deviceOemCaCrossCert,
    });
  }

  /** A vehicle certificate (PEM) as `POST /v1/vehicles` issues it: CN = VIN, the vehicle identifier extension. */
  async issueVehicleCertificate(
    vin: string,
    vehicleIdentifier: Uint8Array,
    publicKey: KeyObject | string,
  ): Promise<string> {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    const certificate = await issueCertificate({
      profile: 'vehicle',
      commonName: vin,
      organization: 'Vehicle OEM',
      publicKey: await importPublicKey(key),
      issuer: this.#root,
      validDays: VEHICLE_CERTIFICATE_DAYS,
      vehicleIdentifier,
    });
    return certificate.toString('pem');
  }

  /** A car provisioned as the server would: identifier, vehicle certificate, pinned root and KTS key. */
  async pairableVehicle(options: SimulatedVehicleOptions & { vin?: string } = {}): Promise<SimulatedVehicle> {
    const { vin = 'WDD1234567A000001', ...carOptions } = options;
    const vehicleIdentifier = carOptions.vehicleIdentifier ?? randomBytes(8);
    const vehiclePrivateKey =
      carOptions.vehiclePrivateKey ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const certificatePem = await this.issueVehicleCertificate(
      vin,
      vehicleIdentifier,
      createPublicKey(vehiclePrivateKey),
    );
    return new SimulatedVehicle({
      vehicleOemRootPem: this.set.vehicleOemRootCert,
      ktsPublicKey: this.set.ktsPublicKey,
      ...carOptions,
      vehicleIdentifier,
      vehiclePrivateKey,
      vehicleCertificatePem: certificatePem,
    });
  }

  /** A KTS that registers owner keys offline: chain check and receipt as the server makes them (§3.4). */
  localRegistrar(): KeyRegistrar & { readonly registrations: KeyRegistration[] } {
    const verifier = new EndpointChainVerifier(this.set.vehicleOemRootCert);
    const ktsKey = createPrivateKey(this.set.ktsKey);
    const registrations: KeyRegistration[] = [];
    return {
      registrations,
      registerKey: (request: KeyRegistrationRequest): Promise<KeyRegistration> =>
        new Promise((resolve) => resolve(register(request))),
    };

    function register(request: KeyRegistrationRequest): KeyRegistration {
      const endpoint = verifier.verify(request.certificateChain.map((der) => Buffer.from(der)));
      if (endpoint.vehicleIdentifier !== request.vehicleId) throw new Error('the chain is for another vehicle');
      const issuedAtMs = Date.now();
      const signature = ecdsaSign(
        ktsKey,
        ktsReceiptMessage({
          vehicleIdentifier: Buffer.from(request.vehicleId, 'hex'),
          keyIdentifier: Buffer.from(endpoint.keyIdentifier, 'hex'),
          endpointCertificateDer: endpoint.certificateDer,
          issuedAtMs,
        }),
      );
      const registration: KeyRegistration = {
        keyId: endpoint.keyIdentifier,
        vehicleId: request.vehicleId,
        role: 'owner',
        state: 'pending',
        ktsReceipt: {
          issuedAtMs,
          signature: signature.toString('base64'),
          encoded: encodeKtsReceipt({ issuedAtMs, signature }).toString('base64'),
        },
      };
      registrations.push(registration);
      return registration;
    }
  }
}

/** A pairing session's verifier for a password, as the server sends it in PAIRING_VERIFIER (§3.1). */
export async function pairingVerifierFor(
  password: string,
  cost: ScryptCost,
  pairingSessionId: string = randomUUID(),
): Promise<PairingVerifier> {
  const salt = randomBytes(16);
  const verifier = await deriveVerifierFromPassword(password, salt, cost);
  verifier.w1.fill(0);
  return {
    pairingSessionId,
    w0: verifier.w0.toString('hex'),
    L: verifier.L.toString('hex'),
    salt: salt.toString('hex'),
    scryptN: cost.N,
    scryptR: cost.r,
    scryptP: cost.p,
  };
}
