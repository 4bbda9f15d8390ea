import { parseResponseApdu, SW, swHex } from '../../protocol/apdu.js';
import { u64 } from '../../protocol/bytes.js';
import { P256PublicKey, type EphemeralKeyPair } from '../../protocol/crypto/p256.js';
import { ECP_SUBTYPE, encodeCarTci, encodeEcpFrame, READER_LOCATION } from '../../protocol/ecp.js';
import {
  decodeEntitlements,
  evaluateEntitlements,
  hasRight,
  withShareWindow,
  type Entitlements,
  type IsoWeekday,
} from '../../protocol/entitlements.js';
import { ProtocolError } from '../../protocol/errors.js';
import { decodeFriendAttestationSlotBlob } from '../../protocol/friend-attestation-slot.js';
import { verifyFriendAttestation } from '../../protocol/friend-attestation.js';
import { keyIdentifier, readerIdentifier, type KeyIdentifierProfile } from '../../protocol/identifiers.js';
import { decodeKtsReceipt, KTS_RECEIPT_LENGTH, ktsReceiptMessageFromDigest } from '../../protocol/kts-receipt.js';
import {
  decodeAttestationSlot,
  decodeKeyListVersion,
  decodeRevocationRelay,
  encodeMailboxRequest,
  parseMailboxResponse,
  PRIVATE_MAILBOX_LAYOUT,
} from '../../protocol/mailbox.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import {
  deriveStandardKeys,
  encodeAuth0Command,
  encodeAuth1Command,
  encodeControlFlowCommand,
  encodeSelectCommand,
  EXCHANGE_HEADER,
  isFastTransactionCode,
  negotiateVersion,
  parseAuth0Response,
  parseAuth1Response,
  parseSelectResponse,
  TRANSACTION_ID_LENGTH,
  transactionContext,
  verifyDeviceAuthentication,
  type Auth0Command,
  type Auth1Response,
  type ControlFlowReason,
  type SignatureContext,
  type TransactionCode,
} from '../../protocol/transaction.js';
import type { ReaderTransport } from '../nfc/contactless.js';
import { NfcLinkError } from '../nfc/nfc-link.js';
import type { VehicleEcu } from './vehicle-ecu.js';
import type {
  DriveLimits,
  ReaderLocation,
  TransactionEvent,
  TransactionReason,
  TransactionResult,
  TransactionType,
  VehicleEventLog,
} from './vehicle-events.js';
import type { EndpointEntry, VehicleKeyList } from './vehicle-key-list.js';

/** What each reader offers **[stand-in]**: engine start only from inside the car (console). */
export const READER_ACTIONS: Readonly<Record<ReaderLocation, readonly TransactionCode[]>> = {
  door: ['unlock', 'lock'],
  console: ['engine-start', 'unlock', 'lock'],
  trunk: ['trunk', 'unlock', 'lock'],
};

/** Everything a reader needs from its car. The vehicle key stays behind `signReader`. */
export interface ReaderContext {
  readonly vehicleIdentifier: Buffer;
  readonly vehiclePublicPoint: Buffer;
  readonly manufacturer: number;
  readonly expressMode: boolean;
  readonly versions: readonly number[];
  readonly profile: KeyIdentifierProfile;
  readonly keyList: VehicleKeyList;
  readonly log: VehicleEventLog;
  readonly ecu: VehicleEcu;
  readonly clock: () => number;
  readonly utcOffsetMinutes: number;
  readonly ephemeralKeys: () => EphemeralKeyPair;
  readonly transactionIds: () => Buffer;
  /** The pinned KTS key: a valid receipt activates a pending owner paired here (§3.4). */
  readonly ktsPublicKey?: P256PublicKey;
  /** Called after the car enrolled a friend offline from its attestation (§7 step 5). */
  readonly onFriendEnrolled?: (keyId: string) => void;
  /** Keys the car revoked from an owner's revocation relay (§4.7): reported to the server. */
  readonly onRelayedRevocation?: (keyIds: readonly string[]) => void;
  signReader(context: SignatureContext): Buffer;
}

/** One read of the attestation slot `len(2) ‖ blob` of an unknown endpoint's private mailbox (§7 step 5). */
const FRIEND_ATTESTATION_REQUEST = encodeMailboxRequest({
  operations: [
    {
      kind: 'read',
      offset: PRIVATE_MAILBOX_LAYOUT.attestation.offset,
      length: PRIVATE_MAILBOX_LAYOUT.attestation.length,
    },
  ],
  more: false,
});

/** An offline enrollment the car refused: CONTROL FLOW reason and the logged detail. */
interface FriendRefusal {
  readonly refused: true;
  readonly controlFlow: ControlFlowReason;
  readonly detail: string;
}

const SELECT_COMMAND = encodeSelectCommand();
const MAILBOX_HEADER_LENGTH =
  PRIVATE_MAILBOX_LAYOUT.keyListVersion.length + PRIVATE_MAILBOX_LAYOUT.revocationRelay.length;
/** One read of the key-list version and the revocation relay (§4.7), the same in every transaction. */
const MAILBOX_HEADER_REQUEST = encodeMailboxRequest({
  operations: [{ kind: 'read', offset: PRIVATE_MAILBOX_LAYOUT.keyListVersion.offset, length: MAILBOX_HEADER_LENGTH }],
  more: false,
});
/** A pending owner's first transaction also reads the KTS receipt slot, `len(2) ‖ receipt(72)` (§3.4, §4.7). */
const RECEIPT_SLOT_LENGTH = 2 + KTS_RECEIPT_LENGTH;
const MAILBOX_HEADER_AND_RECEIPT_REQUEST = encodeMailboxRequest({
  operations: [
    { kind: 'read', offset: PRIVATE_MAILBOX_LAYOUT.keyListVersion.offset, length: MAILBOX_HEADER_LENGTH },
    { kind: 'read', offset: PRIVATE_MAILBOX_LAYOUT.attestation.offset, length: RECEIPT_SLOT_LENGTH },
  ],
  more: false,
});

/** The device answered with an error status. */
class DeviceRefusal extends Error {
  constructor(readonly sw: number) {
    super(`device answered ${swHex(sw)}`);
  }
}

function okData(response: Buffer): Buffer {
  const { data, sw } = parseResponseApdu(response);
  if (sw !== SW.OK) throw new DeviceRefusal(sw);
  return data;
}

function driveLimitsOf(entitlements: Entitlements): DriveLimits | undefined {
  const limits: DriveLimits = {
    ...(entitlements.maxSpeedKmh === undefined ? {} : { maxSpeedKmh: entitlements.maxSpeedKmh }),
    ...(entitlements.maxPowerPercent === undefined ? {} : { maxPowerPercent: entitlements.maxPowerPercent }),
    ...(entitlements.maxVolume === undefined ? {} : { maxVolume: entitlements.maxVolume }),
  };
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** A malformed relay is ignored, not fatal: the transaction itself was authenticated. */
function readRevocationRelay(header: Buffer): { version: bigint; keyIdentifiers: Buffer[] } | undefined {
  try {
    return {
      version: decodeKeyListVersion(header.subarray(0, PRIVATE_MAILBOX_LAYOUT.keyListVersion.length)),
      keyIdentifiers: decodeRevocationRelay(header.subarray(PRIVATE_MAILBOX_LAYOUT.revocationRelay.offset)),
    };
  } catch {
    return undefined;
  }
}

/**
 * §3.4: the KTS signature over this car's vehicle identifier, the key identifier (SHA-256 form,
 * the server's keyId) and the SHA-256 of the endpoint certificate the car received at pairing.
 */
function verifyKtsReceipt(
  ktsPublicKey: P256PublicKey,
  vehicleIdentifier: Buffer,
  endpoint: EndpointEntry,
  slot: Buffer,
): boolean {
  try {
    const blob = decodeAttestationSlot(slot);
    if (!blob || blob.length !== KTS_RECEIPT_LENGTH || !endpoint.certificateDigest) return false;
    const receipt = decodeKtsReceipt(blob);
    const message = ktsReceiptMessageFromDigest({
      vehicleIdentifier,
      keyIdentifier: keyIdentifier(endpoint.publicKey.point, 'sha256-8'),
      endpointCertificateDigest: endpoint.certificateDigest,
      issuedAtMs: receipt.issuedAtMs,
    });
    return ktsPublicKey.verify(message, receipt.signature);
  } catch {
    return false;
  }
}

interface Outcome {
  readonly result: TransactionResult;
  readonly reason: TransactionReason;
  readonly driveLimits?: DriveLimits;
  readonly deviceNotified?: boolean;
  readonly detail?: string;
}

/**
 * One NFC reader of the car (§4): polls with the ECP frame, then runs a fast transaction when
 * the action allows it and a stored Kpersistent matches, the standard one otherwise (on the same
 * ephemerals), reads the owner's mailbox header, decides, drives the ECU and tells the device
 * the outcome with CONTROL FLOW. Every decision goes to the car's event log.
 */
export class VehicleReader {
  readonly readerId: Buffer;
  /** ECP frame of §4.1 this reader emits to wake phones. */
  readonly pollingFrame: Buffer;
  readonly #context: ReaderContext;

  constructor(
    readonly location: ReaderLocation,
    context: ReaderContext,
  ) {
    this.#context = context;
    this.readerId = readerIdentifier(context.vehicleIdentifier, u64(READER_LOCATION[location]));
    this.pollingFrame = encodeEcpFrame({
      presentAutomatically: true,
      noAuthRequired: context.expressMode,
      subtype: ECP_SUBTYPE.WITH_READER_ID,
      tci: encodeCarTci({ manufacturer: context.manufacturer, location: READER_LOCATION[location] }),
      readerGroupId: context.vehicleIdentifier,
    });
  }

  get actions(): readonly TransactionCode[] {
    return READER_ACTIONS[this.location];
  }

  /** Runs one transaction for `action` over `transport`; resolves with the logged event. */
  async transact(transport: ReaderTransport, action: TransactionCode): Promise<TransactionEvent> {
    if (!this.actions.includes(action)) {
      throw new RangeError(`the ${this.location} reader does not offer ${action}`);
    }
    const c = this.#context;
    const started = process.hrtime.bigint();
    let transaction: TransactionType = 'none';
    let endpoint: EndpointEntry | undefined;
    /** Kept back until a KTS receipt has activated a pending owner. */
    let pendingKpersistent: Buffer | undefined;

    const finish = (outcome: Outcome): TransactionEvent => {
      const event: TransactionEvent = {
        kind: 'transaction',
        at: c.clock(),
        reader: this.location,
        action,
        transaction,
        result: outcome.result,
        reason: outcome.reason,
        ...(endpoint ? { keyId: endpoint.keyId, role: endpoint.role } : {}),
        durationMicros: Number(process.hrtime.bigint() - started) / 1000,
        ...(outcome.driveLimits ? { driveLimits: outcome.driveLimits } : {}),
        deviceNotified: outcome.deviceNotified ?? false,
        ...(outcome.detail ? { detail: outcome.detail } : {}),
      };
      c.log.append(event);
      return event;
    };
    const notify = async (success: boolean, reason: ControlFlowReason): Promise<boolean> => {
      try {
        return (
          parseResponseApdu(await transport.transceive(encodeControlFlowCommand({ success, reason }))).sw === SW.OK
        );
      } catch {
        return false;
      }
    };
    const deny = async (reason: TransactionReason, controlFlow: ControlFlowReason, detail?: string) =>
      finish({
        result: 'denied',
        reason,
        deviceNotified: await notify(false, controlFlow),
        ...(detail ? { detail } : {}),
      });

    try {
      if (!(await transport.poll(this.pollingFrame))) return finish({ result: 'failed', reason: 'no-device' });
      const deviceVersions = parseSelectResponse(okData(await transport.transceive(SELECT_COMMAND)));
      let selectedVersion: number;
      try {
        selectedVersion = negotiateVersion(c.versions, deviceVersions);
      } catch {
        return finish({ result: 'failed', reason: 'no-common-version' });
      }

      // AUTH0: fresh ephemeral and transaction id; fast only for unlock, lock, trunk (§4.4).
      const requestFast = isFastTransactionCode(action);
      const ephemeral = c.ephemeralKeys();
      const transactionId = c.transactionIds();
      if (transactionId.length !== TRANSACTION_ID_LENGTH) throw new RangeError('transaction id must be 16 bytes');
      const auth0: Auth0Command = {
        requestFast,
        transactionCode: action,
        selectedVersion,
        readerEphemeralPublicKey: ephemeral.publicPoint,
        transactionId,
        readerId: this.readerId,
      };
      const auth0Response = parseAuth0Response(okData(await transport.transceive(encodeAuth0Command(auth0))));
      const context = transactionContext(auth0, auth0Response, deviceVersions);

      let channel: SecureChannel | undefined;
      if (requestFast && auth0Response.cryptogram) {
        const match = c.keyList.matchFast(context, c.vehiclePublicPoint, auth0Response.cryptogram);
        if (match) {
          transaction = 'fast';
          endpoint = match.entry;
          channel = SecureChannel.afterFast(match.keys, 'reader');
        }
      }

      if (!channel) {
        // Standard transaction (§4.3), on the same ephemerals.
        transaction = 'standard';
        const auth1Response = await transport.transceive(encodeAuth1Command(c.signReader(context)));
        const { sw } = parseResponseApdu(auth1Response);
        if (sw !== SW.OK) throw new DeviceRefusal(sw);
        const keys = deriveStandardKeys(ephemeral.sharedSecretX(auth0Response.endpointEphemeralPublicKey), context);
        channel = SecureChannel.afterAuth1(keys, 'reader');
        const identity = parseAuth1Response(channel.unwrapResponseApdu(auth1Response), c.profile);
        const claimed = identity.keyIdentifier.toString('hex');
        let entry = c.keyList.get(claimed);
        if (!entry && !c.keyList.isDenied(claimed)) {
          // §7 step 5: an unknown endpoint may carry an owner's friend attestation in its mailbox.
          const enrolled = await this.#enrollFriend(transport, channel, identity, context, claimed);
          if ('refused' in enrolled) return await deny('key-unknown', enrolled.controlFlow, enrolled.detail);
          entry = enrolled;
        }
        if (!entry) {
          if (c.keyList.isDenied(claimed)) return await deny('key-revoked', 'key-suspended-or-revoked', claimed);
          return await deny('key-unknown', 'key-unknown', claimed);
        }
        if (!verifyDeviceAuthentication(entry.publicKey, context, identity.deviceSignature)) {
          return await deny('bad-device-signature', 'key-unknown', claimed);
        }
        endpoint = entry;
        if (entry.state === 'terminated' || c.keyList.isDenied(entry.keyId)) {
          return await deny('key-revoked', 'key-suspended-or-revoked');
        }
        if (entry.state === 'suspended') return await deny('key-suspended', 'key-suspended-or-revoked');
        if (entry.state === 'pending') {
          // A pending owner paired here may bring its KTS receipt; anything else waits for ADD_KEY.
          if (!c.ktsPublicKey || !entry.certificateDigest) return await deny('key-pending', 'key-unknown');
          pendingKpersistent = keys.kpersistent;
        } else {
          c.keyList.storeKpersistent(entry, keys.kpersistent);
        }
      }
      if (!endpoint) throw new ProtocolError('bad-state', 'no endpoint after authentication');

      // EXCHANGE: the owner's mailbox may carry revocations for an offline car (§4.7, §5); a
      // pending owner's also carries its KTS receipt (§3.4).
      const request = pendingKpersistent ? MAILBOX_HEADER_AND_RECEIPT_REQUEST : MAILBOX_HEADER_REQUEST;
      const exchangeResponse = await transport.transceive(channel.wrapCommand(EXCHANGE_HEADER, request));
      const mailbox = parseMailboxResponse(channel.unwrapResponseApdu(exchangeResponse));
      if (pendingKpersistent) {
        const slot = mailbox.status === 'ok' ? mailbox.reads[1] : undefined;
        const ktsPublicKey = c.ktsPublicKey;
        if (!slot || !ktsPublicKey || !verifyKtsReceipt(ktsPublicKey, c.vehicleIdentifier, endpoint, slot)) {
          return await deny('key-pending', 'key-unknown', 'no valid KTS receipt');
        }
        if (!c.keyList.activatePending(endpoint, 'kts-receipt')) return await deny('key-pending', 'key-unknown');
        c.keyList.storeKpersistent(endpoint, pendingKpersistent);
      }
      const header = mailbox.status === 'ok' ? mailbox.reads[0] : undefined;
      if (endpoint.role === 'owner' && header?.length === MAILBOX_HEADER_LENGTH) {
        const relay = readRevocationRelay(header);
        const revoked = relay ? c.keyList.applyRevocationRelay(endpoint, relay.version, relay.keyIdentifiers) : [];
        if (revoked.length > 0) c.onRelayedRevocation?.(revoked);
      }
      if (endpoint.state !== 'active') return await deny('key-revoked', 'key-suspended-or-revoked', 'relayed');

      const nowMs = c.clock();
      const local = new Date(nowMs + c.utcOffsetMinutes * 60_000);
      const decision = evaluateEntitlements(
        endpoint.entitlements,
        action,
        Math.floor(nowMs / 1000),
        local.getUTCHours() * 60 + local.getUTCMinutes(),
        (((local.getUTCDay() + 6) % 7) + 1) as IsoWeekday,
      );
      if (!decision.allowed) return await deny(decision.reason, 'entitlement-denied');

      const driveLimits = action === 'engine-start' ? driveLimitsOf(endpoint.entitlements) : undefined;
      c.ecu.actuate(action, driveLimits);
      return finish({
        result: 'granted',
        reason: 'none',
        deviceNotified: await notify(true, 'none'),
        ...(driveLimits ? { driveLimits } : {}),
      });
    } catch (error) {
      // The half transaction is discarded: nothing was actuated.
      if (error instanceof NfcLinkError) {
        return finish({ result: 'failed', reason: error.failure === 'timeout' ? 'timeout' : 'field-lost' });
      }
      if (error instanceof DeviceRefusal)
        return finish({ result: 'failed', reason: 'device-refused', detail: error.message });
      if (error instanceof ProtocolError) {
        const reason =
          error.code === 'bad-mac' || error.code === 'bad-state' ? 'secure-channel-failure' : 'protocol-error';
        return finish({ result: 'failed', reason, deviceNotified: await notify(false, 'none'), detail: error.message });
      }
      throw error;
    }
  }

  /**
   * Offline friend enrollment (§7 step 5): reads the attestation from the endpoint's private
   * mailbox, checks that it names the endpoint that just authenticated, is signed by an active
   * owner key this car holds, for this car, inside its window, with entitlements a friend may
   * hold (no share or manage rights); then enrolls the friend with those entitlements, bounded by
   * the window. Nothing is stored on refusal.
   */
  async #enrollFriend(
    transport: ReaderTransport,
    channel: SecureChannel,
    identity: Auth1Response,
    context: SignatureContext,
    claimed: string,
  ): Promise<EndpointEntry | FriendRefusal> {
    const c = this.#context;
    const refuse = (detail: string, controlFlow: ControlFlowReason = 'key-unknown'): FriendRefusal => ({
      refused: true,
      controlFlow,
      detail: `${claimed}: ${detail}`,
    });
    const response = await transport.transceive(channel.wrapCommand(EXCHANGE_HEADER, FRIEND_ATTESTATION_REQUEST));
    const mailbox = parseMailboxResponse(channel.unwrapResponseApdu(response));
    const slot = mailbox.status === 'ok' ? mailbox.reads[0] : undefined;
    let signed;
    let endpointKey: P256PublicKey;
    let entitlements: Entitlements;
    try {
      const blob = slot ? decodeAttestationSlot(slot) : undefined;
      if (!blob) return refuse('unknown key without a friend attestation');
      signed = decodeFriendAttestationSlotBlob(blob, c.vehicleIdentifier);
      endpointKey = P256PublicKey.fromPoint(signed.attestation.endpointPublicKey);
      entitlements = decodeEntitlements(signed.attestation.entitlements);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return refuse(`malformed friend attestation (${error.message})`);
    }
    const { attestation } = signed;
    if (keyIdentifier(endpointKey.point, c.profile).toString('hex') !== claimed) {
      return refuse('the attestation names another endpoint');
    }
    if (!verifyDeviceAuthentication(endpointKey, context, identity.deviceSignature)) {
      return refuse('bad device signature');
    }
    if (!attestation.vehicleIdentifier.equals(c.vehicleIdentifier)) return refuse('attestation for another vehicle');
    const owner = c.keyList.get(attestation.ownerKeyId.toString('hex'));
    if (!owner || owner.role !== 'owner' || owner.state !== 'active' || c.keyList.isDenied(owner.keyId)) {
      return refuse('the attesting key is not an active owner of this car');
    }
    if (!verifyFriendAttestation(signed, owner.publicKey)) return refuse('owner signature does not verify');
    const now = c.clock();
    if (now < attestation.notBefore.getTime() || now > attestation.notAfter.getTime()) {
      return refuse('outside the attestation window', 'entitlement-denied');
    }
    if (hasRight(entitlements, 'share') || hasRight(entitlements, 'manage-keys')) {
      return refuse('friends cannot hold share or manage rights', 'entitlement-denied');
    }
    const keyId = c.keyList.enroll(
      {
        endpointPublicKey: endpointKey.point,
        role: 'friend',
        entitlements: withShareWindow(entitlements, attestation.notBefore, attestation.notAfter),
      },
      'friend-attestation',
    );
    c.onFriendEnrolled?.(keyId);
    return c.keyList.get(keyId) ?? refuse('enrollment failed');
  }
}
