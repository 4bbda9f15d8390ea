import { decodeKtsReceipt } from '../../protocol/kts-receipt.js';
import { encodeAttestationSlot, PRIVATE_MAILBOX_LAYOUT } from '../../protocol/mailbox.js';
import type { TransactionCode } from '../../protocol/transaction.js';
import type { KeyRegistration, KeyRegistrationRequest } from '../device-oem/device-oem-backend.js';
import { NfcLink, type NfcLinkOptions } from '../nfc/nfc-link.js';
import { tap, type TapOptions, type TapOutcome } from '../nfc/tap.js';
import type { DevicePairingOutcome } from '../secure-element/framework-applet.js';
import type { InstanceCertificateAuthority } from '../secure-element/instance-certificate-authority.js';
import { SoftwareSecureElement, type SoftwareSecureElementOptions } from '../secure-element/software-secure-element.js';
import type { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import type { PairingEvent, PairingReason, PairingResult, ReaderLocation } from '../vehicle/vehicle-events.js';

/** The part of the phone maker's backend a phone uses to register a key (`DeviceOemBackend` implements it). */
export interface KeyRegistrar {
  registerKey(request: KeyRegistrationRequest): Promise<KeyRegistration>;
}

export interface SimulatedDeviceOptions {
  /** The Device OEM's Instance CA for the automaker, held by the phone's SE (§2, §3.4). */
  readonly instanceCa: InstanceCertificateAuthority;
  /** The phone's Device OEM account: its maker's backend registers keys with the Vehicle OEM server. */
  readonly deviceOem?: KeyRegistrar;
  /** Reported as device metadata at registration. */
  readonly model?: string;
  readonly osVersion?: string;
  readonly secureElement?: Omit<SoftwareSecureElementOptions, 'instanceCa'>;
}

/** `paired`: the car holds it as pending owner; `registered`: the server tracks it and the receipt is in the mailbox. */
export type WalletKeyState = 'paired' | 'registered';

/** One car key as the Wallet shows it. */
export interface WalletKey {
  readonly keyId: string;
  readonly vehicleIdentifier: string;
  readonly state: WalletKeyState;
  /** The server's state at registration (`pending` until the car acknowledges ADD_KEY). */
  readonly serverState?: string;
  readonly ktsReceiptIssuedAtMs?: number;
}

export interface DevicePairingResult {
  readonly result: Exclude<PairingResult, 'verifier-installed'>;
  readonly reason: PairingReason;
  /** The attempt's §3.2 status word (9484: not ready or attempts exhausted). */
  readonly sw?: number;
  readonly keyId?: string;
  /** What the car logged. */
  readonly carEvent: PairingEvent;
  /** What the SE recorded, when the attempt got that far. */
  readonly deviceOutcome?: DevicePairingOutcome;
}

/**
 * Per-APDU deadline while pairing **[stand-in]**: SPAKE2+ REQUEST runs scrypt (about 0.2 s at
 * the production cost), for which a real SE asks the reader for waiting-time extensions
 * (ISO/IEC 14443-4 S(WTX)); the in-memory link models that as a longer deadline.
 */
export const PAIRING_APDU_TIMEOUT_MS = 2_000;

export class DeviceRegistrationError extends Error {
  override readonly name = 'DeviceRegistrationError';
}

/**
 * A simulated phone: a software SE (framework and transaction applets), the Wallet's view of
 * its car keys, and its Device OEM account. Owner pairing (§3): the user types the password,
 * holds the phone to the car's pairing reader, then the phone registers the new key through its
 * maker's backend and puts the KTS receipt into the key's private mailbox for the car.
 */
export class SimulatedDevice {
  readonly secureElement: SoftwareSecureElement;
  readonly model: string;
  readonly #options: SimulatedDeviceOptions;
  readonly #wallet = new Map<string, WalletKey>();

  constructor(options: SimulatedDeviceOptions) {
    this.#options = options;
    this.model = options.model ?? 'Simulated Phone';
    this.secureElement = new SoftwareSecureElement({ ...options.secureElement, instanceCa: options.instanceCa });
  }

  get wallet(): WalletKey[] {
    return [...this.#wallet.values()];
  }

  walletKey(keyId: string): WalletKey | undefined {
    return this.#wallet.get(keyId);
  }

  /** The user types the 8 digits the operator handed over (§3.1). */
  enterPairingPassword(password: string): void {
    this.secureElement.enterPairingPassword(password);
  }

  /** Holds the phone to the car's pairing reader for one attempt (§3.2–3.4). */
  async pairWith(car: SimulatedVehicle, options: NfcLinkOptions = {}): Promise<DevicePairingResult> {
    const before = this.secureElement.pairingOutcomes.at(-1);
    const link = new NfcLink(this.secureElement, { timeoutMs: PAIRING_APDU_TIMEOUT_MS, ...options });
    let carEvent: PairingEvent;
    try {
      carEvent = await car.pairingReader.pair(link);
    } finally {
      link.loseField();
    }
    const outcomes = this.secureElement.pairingOutcomes;
    const deviceOutcome = outcomes.at(-1) === before ? undefined : outcomes.at(-1);
    const keyId = deviceOutcome?.success ? deviceOutcome.keyId : undefined;
    if (carEvent.result === 'paired' && keyId && keyId === carEvent.keyId) {
      this.#wallet.set(keyId, { keyId, vehicleIdentifier: car.vehicleIdentifierHex, state: 'paired' });
    }
    return {
      result: carEvent.result === 'verifier-installed' ? 'failed' : carEvent.result,
      reason: carEvent.reason,
      ...(carEvent.sw === undefined ? {} : { sw: carEvent.sw }),
      ...(carEvent.result === 'paired' && keyId ? { keyId } : {}),
      carEvent,
      ...(deviceOutcome ? { deviceOutcome } : {}),
    };
  }

  /**
   * Registers a paired key through the Device OEM backend (§3.4) and stores the KTS receipt in
   * the key's private mailbox slot 0x0040, where the car reads it at the first transaction.
   */
  async registerKey(keyId: string): Promise<WalletKey> {
    const registrar = this.#options.deviceOem;
    if (!registrar) throw new DeviceRegistrationError('this device has no Device OEM account');
    const key = this.secureElement.key(keyId);
    const chain = this.secureElement.endpointCertificateChain(keyId);
    if (!chain) throw new DeviceRegistrationError(`key ${keyId} was not created by owner pairing`);
    const registration = await registrar.registerKey({
      vehicleId: key.vehicleIdentifier,
      role: 'owner',
      certificateChain: chain,
      deviceMetadata: {
        deviceType: 'phone',
        model: this.model,
        ...(this.#options.osVersion ? { osVersion: this.#options.osVersion } : {}),
      },
    });
    if (registration.keyId !== keyId || registration.vehicleId !== key.vehicleIdentifier) {
      throw new DeviceRegistrationError('the server registered another key than the one sent');
    }
    const receipt = Buffer.from(registration.ktsReceipt.encoded, 'base64');
    const { issuedAtMs } = decodeKtsReceipt(receipt);
    this.secureElement.writePrivateMailbox(
      keyId,
      PRIVATE_MAILBOX_LAYOUT.attestation.offset,
      encodeAttestationSlot(receipt),
    );
    const walletKey: WalletKey = {
      keyId,
      vehicleIdentifier: key.vehicleIdentifier,
      state: 'registered',
      serverState: registration.state,
      ktsReceiptIssuedAtMs: issuedAtMs,
    };
    this.#wallet.set(keyId, walletKey);
    return walletKey;
  }

  /** Holds the phone to one of the car's transaction readers (§4). */
  tap(
    car: SimulatedVehicle,
    reader: ReaderLocation,
    action: TransactionCode,
    options: TapOptions = {},
  ): Promise<TapOutcome> {
    return tap(this.secureElement, car, reader, action, options);
  }
}
