import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import { fromHex, toHex } from '../../protocol/bytes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { encodeFriendAttestationSlotBlob } from '../../protocol/friend-attestation-slot.js';
import { decodeSignedFriendAttestation } from '../../protocol/friend-attestation.js';
import {
  encodeShareLink,
  openInvitation,
  parseShareLink,
  sealInvitation,
  type InvitationPayload,
} from '../../protocol/share-invitation.js';
import { decodeEntitlements } from '../../protocol/entitlements.js';
import { decodeKtsReceipt } from '../../protocol/kts-receipt.js';
import { encodeAttestationSlot, encodeRevocationRelay, PRIVATE_MAILBOX_LAYOUT } from '../../protocol/mailbox.js';
import { encodeTerminationProof } from '../../protocol/termination-attestation.js';
import type { TransactionCode } from '../../protocol/transaction.js';
import type {
  KeyNotification,
  KeyNotificationType,
  KeyRegistration,
  KeyRegistrationRequest,
  ManagedDevice,
  PartnerKey,
} from '../device-oem/device-oem-backend.js';
import { MAX_INVITATION_MAILBOX_MS, type InvitationRelay } from '../device-oem/invitation-relay.js';
import { NfcLink, type NfcLinkOptions } from '../nfc/nfc-link.js';
import { tap, type TapOptions, type TapOutcome } from '../nfc/tap.js';
import type { DevicePairingOutcome } from '../secure-element/framework-applet.js';
import type { InstanceCertificateAuthority } from '../secure-element/instance-certificate-authority.js';
import {
  SoftwareSecureElement,
  type EndpointKeyState,
  type SoftwareSecureElementOptions,
} from '../secure-element/software-secure-element.js';
import type { SimulatedVehicle } from '../vehicle/simulated-vehicle.js';
import type { PairingEvent, PairingReason, PairingResult, ReaderLocation } from '../vehicle/vehicle-events.js';

/** The part of the phone maker's backend a phone uses to register a key (`DeviceOemBackend` implements it). */
export interface KeyRegistrar {
  registerKey(request: KeyRegistrationRequest): Promise<KeyRegistration>;
  /**
   * Reports a key deleted in the Wallet with its termination proof (base64, §5), or — without a
   * proof — asks for a key the owner manages (a friend's) to be terminated.
   */
  terminateKey?(keyId: string, terminationAttestation: string | undefined, reason?: string): Promise<PartnerKey>;
  /** The maker's invitation mailboxes and share-link base (§7 step 1). */
  readonly invitations?: InvitationRelay;
  readonly shareBaseUrl?: string;
}

export interface SimulatedDeviceOptions {
  /** The Device OEM's Instance CA for the automaker, held by the phone's SE (§2, §3.4). */
  readonly instanceCa: InstanceCertificateAuthority;
  /** The phone's Device OEM account: its maker's backend registers keys with the Vehicle OEM server. */
  readonly deviceOem?: KeyRegistrar;
  /** The phone's identity with its maker's backend (push token); random when absent. */
  readonly deviceId?: string;
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
  readonly role: 'owner' | 'friend';
  /** The key in the SE: `suspended` while the server has it suspended (lost mode, §5). */
  readonly keyState: EndpointKeyState;
  /**
   * The server's state: at registration (`pending` until the car acknowledges ADD_KEY), then as
   * the last notification relayed by the Device OEM backend reported it.
   */
  readonly serverState?: string;
  readonly ktsReceiptIssuedAtMs?: number;
}

/** What the phone did with one key notification its maker's backend pushed (§5). */
export interface DeviceKeyUpdate {
  readonly eventId: string;
  readonly type: KeyNotificationType;
  readonly keyId: string;
  /**
   * `deleted`: remote termination, the SE dropped the key; `relay-written`: the owner key's
   * revocation relay is in its private mailbox; `noted`: only the Wallet's server state changed.
   */
  readonly result: 'suspended' | 'resumed' | 'deleted' | 'relay-written' | 'noted' | 'unknown-key';
}

/** A friend's new key as it goes to the owner (§7 step 2, KeySigningRequest). */
export interface FriendKeyRequest {
  readonly keyId: string;
  readonly vehicleIdentifier: string;
  /** 65-byte point. */
  readonly endpointPublicKey: Buffer;
  /** Endpoint, Instance CA, Device OEM CA cross (DER). */
  readonly certificateChain: readonly Buffer[];
  /** Entitlements TLV (§6) the invitation offered. */
  readonly entitlements: Buffer;
  /** The invitation mailbox this answers (§7 step 1), when it came through the relay. */
  readonly invitationId?: string;
}

/** What the owner sets when inviting a friend (§7 step 1). */
export interface InvitationOptions {
  /** Access profile name and its entitlements TLV, as the server lists them. */
  readonly profileName: string;
  readonly entitlements: Uint8Array;
  readonly validityMs?: number;
  /** Optional 6-digit PIN, sent out of band. */
  readonly pin?: string;
}

export type InvitationFailure =
  'mailbox-refused' | 'wrong-pin' | 'malformed' | 'expired' | 'not-owner' | 'chain-refused';

/** The phone refused an invitation step (§7). */
export class InvitationError extends Error {
  override readonly name = 'InvitationError';

  constructor(
    readonly failure: InvitationFailure,
    message: string,
  ) {
    super(message);
  }
}

/** An owner's invitation as the friend's phone receives it (§7 step 1; the relay itself is not simulated). */
export interface ShareInvitation {
  /** 8-byte vehicle identifier, hex. */
  readonly vehicleIdentifier: string;
  /** The vehicle (reader long-term) public key, 65-byte point: the friend's SE verifies AUTH1 with it. */
  readonly vehiclePublicKey: Uint8Array;
  /** Entitlements TLV (§6) of the shared access profile. */
  readonly entitlements: Uint8Array;
}

type WalletEntry = Omit<WalletKey, 'keyState'>;

/**
 * A phone as its Wallet and SE hold it: the SE's applet state sealed under the phone's storage
 * key (`SoftwareSecureElement.exportState`), which the snapshot carries, so the whole snapshot
 * must be sealed again by its keeper.
 */
export interface DeviceSnapshot {
  deviceId: string;
  model: string;
  osVersion?: string;
  /** The phone's hardware-bound storage key (32 bytes, hex). */
  storageKey: string;
  /** The sealed SE state, base64. */
  secureElement: string;
  wallet: WalletEntry[];
  keyUpdates: DeviceKeyUpdate[];
  /** Wallet deletions signed offline, not yet delivered (absent in older snapshots). */
  unsentTerminations?: Array<{ keyId: string; proof: string; reason: string }>;
  online?: boolean;
}

/** Default validity of a shared key (§7): a week. */
export const DEFAULT_SHARE_VALIDITY_MS = 7 * 86_400_000;

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
 * maker's backend and puts the KTS receipt into the key's private mailbox for the car. Sharing
 * (§7): a friend's phone creates a certified key, the owner's SE attests it, the friend registers
 * it. Its maker's backend pushes the server's key changes (§5): suspend, resume, remote deletion.
 */
export class SimulatedDevice implements ManagedDevice {
  readonly secureElement: SoftwareSecureElement;
  readonly model: string;
  readonly deviceId: string;
  /** Key notifications pushed by the Device OEM backend and what the phone did with each, oldest first. */
  readonly keyUpdates: DeviceKeyUpdate[] = [];
  readonly #options: SimulatedDeviceOptions;
  readonly #wallet = new Map<string, WalletEntry>();
  /** Wallet deletions signed while the phone had no network, sent when it is back (§5). */
  readonly #unsentTerminations: Array<{ keyId: string; proof: string; reason: string }> = [];
  #online = true;
  /** Friend keys created for an invitation, waiting for the owner's attestation (§7). */
  readonly #friendRequests = new Map<string, FriendKeyRequest>();
  /** Owner side: invitations sent and not yet answered, by mailbox id (§7 step 1). */
  readonly #invitations = new Map<string, InvitationPayload>();
  /** Seals the SE state at rest (the phone's hardware-bound storage key in real life). */
  readonly #storageKey: Buffer;

  /** `restored`: the SE and storage key of a snapshot (`fromSnapshot`); a new, empty SE otherwise. */
  constructor(
    options: SimulatedDeviceOptions,
    restored?: { secureElement: SoftwareSecureElement; storageKey: Buffer },
  ) {
    this.#options = options;
    this.model = options.model ?? 'Simulated Phone';
    this.deviceId = options.deviceId ?? randomUUID();
    this.secureElement =
      restored?.secureElement ??
      new SoftwareSecureElement({ ...options.secureElement, instanceCa: options.instanceCa });
    this.#storageKey = restored?.storageKey ?? randomBytes(32);
  }

  /** The phone's state; the SE part is sealed, the rest (and the storage key) is for the caller to seal. */
  toSnapshot(): DeviceSnapshot {
    return {
      deviceId: this.deviceId,
      model: this.model,
      ...(this.#options.osVersion ? { osVersion: this.#options.osVersion } : {}),
      storageKey: this.#storageKey.toString('hex'),
      secureElement: this.secureElement.exportState(this.#storageKey).toString('base64'),
      wallet: [...this.#wallet.values()],
      keyUpdates: [...this.keyUpdates],
      unsentTerminations: this.#unsentTerminations.map((entry) => ({ ...entry })),
      online: this.#online,
    };
  }

  /** A phone as `toSnapshot` left it; a tampered SE blob or a wrong storage key is refused. */
  static fromSnapshot(
    snapshot: DeviceSnapshot,
    options: Omit<SimulatedDeviceOptions, 'deviceId' | 'model' | 'osVersion'>,
  ): SimulatedDevice {
    const storageKey = Buffer.from(snapshot.storageKey, 'hex');
    const secureElement = SoftwareSecureElement.importState(Buffer.from(snapshot.secureElement, 'base64'), storageKey, {
      ...options.secureElement,
      instanceCa: options.instanceCa,
    });
    const phone = new SimulatedDevice(
      {
        ...options,
        deviceId: snapshot.deviceId,
        model: snapshot.model,
        ...(snapshot.osVersion ? { osVersion: snapshot.osVersion } : {}),
      },
      { secureElement, storageKey },
    );
    for (const entry of snapshot.wallet) phone.#wallet.set(entry.keyId, entry);
    phone.keyUpdates.push(...snapshot.keyUpdates);
    phone.#unsentTerminations.push(...(snapshot.unsentTerminations ?? []));
    phone.#online = snapshot.online ?? true;
    return phone;
  }

  get wallet(): WalletKey[] {
    return [...this.#wallet.keys()].flatMap((keyId) => this.walletKey(keyId) ?? []);
  }

  /** The key as the Wallet shows it; gone once the SE no longer holds it. */
  walletKey(keyId: string): WalletKey | undefined {
    const entry = this.#wallet.get(keyId);
    const held = this.secureElement.keys().find((key) => key.keyId === keyId);
    if (!entry || !held) return undefined;
    return { ...entry, keyState: held.state };
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
      this.#wallet.set(keyId, { keyId, vehicleIdentifier: car.vehicleIdentifierHex, state: 'paired', role: 'owner' });
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
      deviceMetadata: this.#deviceMetadata(),
      deviceId: this.deviceId,
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
    this.#wallet.set(keyId, {
      keyId,
      vehicleIdentifier: key.vehicleIdentifier,
      state: 'registered',
      role: 'owner',
      serverState: registration.state,
      ktsReceiptIssuedAtMs: issuedAtMs,
    });
    return this.walletKey(keyId)!;
  }

  // ---------------------------------------------------------------------------------------------
  // Sharing (§7): the friend's phone creates a key, the owner's SE attests it, the friend registers it
  // ---------------------------------------------------------------------------------------------

  /**
   * Friend side (§7 step 2): accepts an invitation; the SE generates a friend endpoint key bound
   * to the car and the SE's Instance CA certifies it. Returns the KeySigningRequest for the owner.
   */
  createFriendKey(invitation: ShareInvitation): FriendKeyRequest {
    const vehicleIdentifier = Buffer.from(invitation.vehicleIdentifier, 'hex');
    const entitlements = Buffer.from(invitation.entitlements);
    decodeEntitlements(entitlements); // validate
    const created = this.secureElement.createKey({
      vehicleIdentifier,
      vehiclePublicKey: invitation.vehiclePublicKey,
      entitlements,
      role: 'friend',
    });
    const certificateChain = this.#options.instanceCa.issueEndpointChain({
      endpointPublicKey: created.endpointPublicKey,
      vehicleIdentifier,
      role: 'friend',
      entitlements,
    });
    const request: FriendKeyRequest = {
      keyId: created.keyId,
      vehicleIdentifier: toHex(vehicleIdentifier),
      endpointPublicKey: Buffer.from(created.endpointPublicKey),
      certificateChain: certificateChain.map((der) => Buffer.from(der)),
      entitlements,
    };
    this.#friendRequests.set(created.keyId, request);
    return request;
  }

  /**
   * Owner side (§7 step 3): the owner key in this phone's SE signs the friend attestation for the
   * friend's key, valid from a minute ago for `validityMs`. Returns the DER `SignedFriendAttestation`.
   */
  shareKey(ownerKeyId: string, friend: FriendKeyRequest, validityMs = DEFAULT_SHARE_VALIDITY_MS): Buffer {
    const owner = this.secureElement.key(ownerKeyId);
    if (owner.vehicleIdentifier !== friend.vehicleIdentifier) {
      throw new DeviceRegistrationError('the friend key is for another vehicle');
    }
    const now = Math.floor(Date.now() / 1000) * 1000;
    return this.secureElement.signFriendAttestation(ownerKeyId, {
      endpointPublicKey: friend.endpointPublicKey,
      entitlements: friend.entitlements,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + validityMs),
    });
  }

  /**
   * Owner side (§7 step 1): seals an invitation under a random secret, deposits the ciphertext in
   * the Device OEM's mailbox and returns the share link (secret in the fragment only). Only an
   * active owner key may invite: friends cannot re-share.
   */
  createInvitation(ownerKeyId: string, options: InvitationOptions): string {
    const relay = this.#options.deviceOem?.invitations;
    if (!relay) throw new DeviceRegistrationError('this device has no Device OEM account');
    const owner = this.secureElement.key(ownerKeyId);
    if (owner.role !== 'owner' || owner.state !== 'active') {
      throw new InvitationError('not-owner', `key ${ownerKeyId} may not share (friends cannot re-share)`);
    }
    const now = Math.floor(Date.now() / 1000) * 1000;
    const validityMs = options.validityMs ?? DEFAULT_SHARE_VALIDITY_MS;
    const payload: InvitationPayload = {
      vehicleIdentifier: Buffer.from(owner.vehicleIdentifier, 'hex'),
      vehiclePublicKey: Buffer.from(owner.vehiclePublicKey),
      ownerKeyId: Buffer.from(owner.keyIdentifier),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + Math.floor(validityMs / 1000) * 1000),
      profileName: options.profileName,
      entitlements: Buffer.from(options.entitlements),
    };
    const { secret, envelope } = sealInvitation(payload, options.pin);
    const mailboxId = relay.deposit(envelope, now + Math.min(validityMs, MAX_INVITATION_MAILBOX_MS));
    this.#invitations.set(mailboxId, payload);
    return encodeShareLink(this.#options.deviceOem?.shareBaseUrl ?? 'https://wallet.invalid', mailboxId, secret);
  }

  /**
   * Friend side (§7 steps 1–2): reads the mailbox (binding it to this phone), opens the invitation
   * with the link's secret and the PIN, and creates the friend key (KeySigningRequest).
   */
  acceptInvitation(link: string, pin?: string): FriendKeyRequest {
    const relay = this.#options.deviceOem?.invitations;
    if (!relay) throw new DeviceRegistrationError('this device has no Device OEM account');
    let parsed: { mailboxId: string; secret: Buffer };
    try {
      parsed = parseShareLink(link);
    } catch (error) {
      throw new InvitationError('malformed', error instanceof Error ? error.message : 'bad link');
    }
    let envelope: Buffer;
    try {
      envelope = relay.collect(parsed.mailboxId, this.deviceId);
    } catch (error) {
      throw new InvitationError('mailbox-refused', error instanceof Error ? error.message : 'mailbox refused');
    }
    let invitation: InvitationPayload;
    try {
      invitation = openInvitation(envelope, parsed.secret, pin);
    } catch (error) {
      if (error instanceof ProtocolError && (error.code === 'bad-mac' || error.code === 'bad-key')) {
        throw new InvitationError('wrong-pin', `the invitation does not open: ${error.message}`);
      }
      throw new InvitationError('malformed', error instanceof Error ? error.message : 'bad invitation');
    }
    if (Date.now() > invitation.notAfter.getTime()) throw new InvitationError('expired', 'the invitation has expired');
    const request = this.createFriendKey({
      vehicleIdentifier: toHex(invitation.vehicleIdentifier),
      vehiclePublicKey: invitation.vehiclePublicKey,
      entitlements: invitation.entitlements,
    });
    const answered = { ...request, invitationId: parsed.mailboxId };
    this.#friendRequests.set(request.keyId, answered);
    return answered;
  }

  /**
   * Owner side (§7 step 3): verifies the friend's chain against the Vehicle OEM root the car wrote
   * at pairing and that it certifies the key, car, role and entitlements of the invitation, then
   * the owner's SE signs the attestation for the invitation's window (KeyImportRequest).
   */
  attestFriendKey(ownerKeyId: string, request: FriendKeyRequest): Buffer {
    const invitation = request.invitationId === undefined ? undefined : this.#invitations.get(request.invitationId);
    if (!invitation) throw new InvitationError('malformed', 'no open invitation for this request');
    const root = this.secureElement.vehicleOemRootCertificate(ownerKeyId);
    if (!root) throw new InvitationError('not-owner', `key ${ownerKeyId} was not paired here`);
    let verified;
    try {
      verified = new EndpointChainVerifier(new X509Certificate(root).toString()).verify([...request.certificateChain]);
    } catch (error) {
      throw new InvitationError('chain-refused', error instanceof Error ? error.message : 'chain refused');
    }
    if (
      !verified.publicKeyPoint.equals(request.endpointPublicKey) ||
      verified.keyIdentifier !== request.keyId ||
      verified.vehicleIdentifier !== toHex(invitation.vehicleIdentifier) ||
      verified.role !== 'friend' ||
      !verified.entitlements?.equals(invitation.entitlements) ||
      !request.entitlements.equals(invitation.entitlements)
    ) {
      throw new InvitationError('chain-refused', 'the chain does not certify the invited friend key');
    }
    const attestation = this.secureElement.signFriendAttestation(ownerKeyId, {
      endpointPublicKey: request.endpointPublicKey,
      entitlements: invitation.entitlements,
      notBefore: invitation.notBefore,
      notAfter: invitation.notAfter,
    });
    this.#invitations.delete(request.invitationId!);
    return attestation;
  }

  /**
   * Friend side (§7 steps 4–5): stores the attestation in the key's private mailbox slot 0x0040
   * (where an offline car reads it at the first tap), then registers the key through the Device
   * OEM backend.
   */
  async registerFriendKey(keyId: string, attestation: Uint8Array): Promise<WalletKey> {
    const registrar = this.#options.deviceOem;
    if (!registrar) throw new DeviceRegistrationError('this device has no Device OEM account');
    const request = this.#friendRequests.get(keyId);
    if (!request) throw new DeviceRegistrationError(`key ${keyId} was not created for an invitation`);
    const signed = decodeSignedFriendAttestation(attestation);
    if (!signed.attestation.endpointPublicKey.equals(request.endpointPublicKey)) {
      throw new DeviceRegistrationError('the attestation names another key');
    }
    this.secureElement.writePrivateMailbox(
      keyId,
      PRIVATE_MAILBOX_LAYOUT.attestation.offset,
      encodeAttestationSlot(encodeFriendAttestationSlotBlob(attestation)),
    );
    const registration = await registrar.registerKey({
      vehicleId: request.vehicleIdentifier,
      role: 'friend',
      certificateChain: request.certificateChain,
      attestation,
      deviceMetadata: this.#deviceMetadata(),
      deviceId: this.deviceId,
    });
    if (registration.keyId !== keyId || registration.vehicleId !== request.vehicleIdentifier) {
      throw new DeviceRegistrationError('the server registered another key than the one sent');
    }
    this.#friendRequests.delete(keyId);
    // The car learns of the key through ADD_KEY (§8) or from the mailbox at the first tap (§7 step 5).
    this.#wallet.set(keyId, {
      keyId,
      vehicleIdentifier: request.vehicleIdentifier,
      state: 'registered',
      role: 'friend',
      serverState: registration.state,
      ktsReceiptIssuedAtMs: registration.ktsReceipt.issuedAtMs,
    });
    return this.walletKey(keyId)!;
  }

  /**
   * The user deletes the key in the Wallet (§5): the SE disables it at once and signs the
   * termination attestation with the endpoint key, which it then destroys; the phone reports the
   * deletion with that proof through its maker's backend. Returns the server's view of the key.
   */
  async deleteKey(keyId: string, reason = 'deleted in the wallet'): Promise<PartnerKey | 'queued'> {
    const registrar = this.#options.deviceOem;
    if (!registrar?.terminateKey) throw new DeviceRegistrationError('this device has no Device OEM account');
    const attestation = this.secureElement.terminateKey(keyId);
    const proof = encodeTerminationProof({
      counter: attestation.counter,
      unixMs: attestation.unixMs,
      signature: attestation.signature,
    }).toString('base64');
    // The key is disabled now, network or not; the proof waits for the network if it must.
    if (!this.#online) {
      this.#unsentTerminations.push({ keyId, proof, reason });
      return 'queued';
    }
    return registrar.terminateKey(keyId, proof, reason);
  }

  /** Signed Wallet deletions not yet delivered to the phone maker's backend. */
  get unsentTerminations(): readonly string[] {
    return this.#unsentTerminations.map((entry) => entry.keyId);
  }

  /**
   * The phone's own network: offline, Wallet deletions wait (already signed); back online, they
   * are delivered in order. Resolves when the queue was tried; a refused one is dropped.
   */
  async setOnline(online: boolean): Promise<void> {
    this.#online = online;
    const registrar = this.#options.deviceOem;
    while (this.#online && registrar?.terminateKey && this.#unsentTerminations.length > 0) {
      const next = this.#unsentTerminations[0];
      try {
        await registrar.terminateKey(next.keyId, next.proof, next.reason);
      } catch (error) {
        // A network failure keeps it for the next time; an answer from the server settles it.
        if (!(error instanceof Error && 'status' in error)) return;
      }
      this.#unsentTerminations.shift();
    }
  }

  /** The owner deletes a friend's key it shared (§5): through its maker's backend, like any terminate. */
  async revokeSharedKey(friendKeyId: string, reason = 'deleted by the owner'): Promise<PartnerKey> {
    const registrar = this.#options.deviceOem;
    if (!registrar?.terminateKey) throw new DeviceRegistrationError('this device has no Device OEM account');
    return registrar.terminateKey(friendKeyId, undefined, reason);
  }

  // ---------------------------------------------------------------------------------------------
  // Key changes pushed by the Device OEM backend (§5)
  // ---------------------------------------------------------------------------------------------

  /**
   * Applies a key change the Vehicle OEM server reported and the Device OEM backend verified and
   * pushed: suspended → the SE suspends the key (the Wallet shows it suspended), resumed → active
   * again, terminating or terminated → remote termination, the SE deletes the key. Never throws.
   */
  applyKeyNotification(notification: KeyNotification): void {
    const { keyId } = notification;
    const held = this.secureElement.keys().find((key) => key.keyId === keyId);
    let result: DeviceKeyUpdate['result'];
    if (!held) result = 'unknown-key';
    else {
      switch (notification.type) {
        case 'KEY_SUSPENDED':
          result = this.#setKeyState(keyId, held.state, 'suspended') ? 'suspended' : 'noted';
          break;
        case 'KEY_RESUMED':
          result = this.#setKeyState(keyId, held.state, 'active') ? 'resumed' : 'noted';
          break;
        case 'KEY_TERMINATING':
        case 'KEY_TERMINATED':
          this.secureElement.deleteKey(keyId);
          this.#wallet.delete(keyId);
          result = 'deleted';
          break;
        case 'REVOCATION_RELAY':
          result = this.#writeRevocationRelay(keyId, notification.revocationRelay) ? 'relay-written' : 'noted';
          break;
        default:
          result = 'noted';
      }
      const entry = this.#wallet.get(keyId);
      if (entry) this.#wallet.set(keyId, { ...entry, serverState: notification.state });
    }
    this.keyUpdates.push({ eventId: notification.eventId, type: notification.type, keyId, result });
  }

  /**
   * The owner key's revocation relay (§4.7): the vehicle's key-list version and the revoked key
   * ids, written at the head of the private mailbox, which the car reads at every transaction.
   */
  #writeRevocationRelay(keyId: string, relay: KeyNotification['revocationRelay']): boolean {
    if (!relay) return false;
    const head = Buffer.alloc(PRIVATE_MAILBOX_LAYOUT.keyListVersion.length);
    head.writeBigUInt64BE(BigInt(relay.keyListVersion));
    this.secureElement.writePrivateMailbox(keyId, PRIVATE_MAILBOX_LAYOUT.keyListVersion.offset, head);
    this.secureElement.writePrivateMailbox(
      keyId,
      PRIVATE_MAILBOX_LAYOUT.revocationRelay.offset,
      encodeRevocationRelay(relay.keyIds.map((id) => fromHex(id))),
    );
    return true;
  }

  #setKeyState(keyId: string, current: EndpointKeyState, next: 'active' | 'suspended'): boolean {
    if (current === 'terminated' || current === next) return false;
    this.secureElement.setKeyState(keyId, next);
    return true;
  }

  #deviceMetadata(): NonNullable<KeyRegistrationRequest['deviceMetadata']> {
    return {
      deviceType: 'phone',
      model: this.model,
      ...(this.#options.osVersion ? { osVersion: this.#options.osVersion } : {}),
    };
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
