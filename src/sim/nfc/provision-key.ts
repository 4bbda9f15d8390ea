import type { KeyRole } from '../../protocol/certificate-extensions.js';
import { encodeEntitlements, type Entitlements } from '../../protocol/entitlements.js';
import type { CreatedKey, SoftwareSecureElement } from '../secure-element/software-secure-element.js';
import type { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import type { CarKeyState } from '../vehicle/vehicle-events.js';

export interface ProvisionKeyRequest {
  readonly role: KeyRole;
  readonly entitlements: Entitlements;
  /** State on the car; default `active`. */
  readonly carState?: Exclude<CarKeyState, 'terminated'>;
}

/**
 * Shortcut of owner pairing / friend enrolment for tests, demos and benchmarks: the SE creates
 * the endpoint key bound to the car, and the car puts it on its allow-list. The §3 pairing flow
 * (SPAKE2+, certificates, KTS receipt) replaces this in the real path.
 */
export function provisionKey(
  device: SoftwareSecureElement,
  car: SimulatedVehicle,
  request: ProvisionKeyRequest,
): CreatedKey {
  const created = device.createKey({
    vehicleIdentifier: car.vehicleIdentifier,
    vehiclePublicKey: car.publicPoint,
    entitlements: encodeEntitlements(request.entitlements),
    role: request.role,
  });
  car.enrollEndpoint({
    endpointPublicKey: created.endpointPublicKey,
    role: request.role,
    entitlements: request.entitlements,
    ...(request.carState ? { state: request.carState } : {}),
  });
  return created;
}
