import { isMoreDataStatus, parseResponseApdu, SW, swHex } from '../../protocol/apdu.js';
import { u16, u64 } from '../../protocol/bytes.js';
import { sha256 } from '../../protocol/crypto/kdf.js';
import { ECP_SUBTYPE, encodeCarTci, encodeEcpFrame, READER_LOCATION } from '../../protocol/ecp.js';
import { encodeEntitlements, type Entitlements } from '../../protocol/entitlements.js';
import { ProtocolError } from '../../protocol/errors.js';
import { readerIdentifier } from '../../protocol/identifiers.js';
import { CONFIDENTIAL_MAILBOX_SIZE, PRIVATE_MAILBOX_SIZE } from '../../protocol/mailbox.js';
import {
  encodeGetResponseCommand,
  encodePairingData,
  encodeSpake2RequestCommand,
  encodeSpake2VerifyCommand,
  FRAMEWORK_APPLET_AID,
  GET_DATA_HEADER,
  parseEndpointChain,
  parseFrameworkSelectResponse,
  parseSpake2RequestResponse,
  parseSpake2VerifyResponse,
  SPAKE2PLUS_VERSION_1,
  splitWriteDataBlocks,
  WRITE_DATA_HEADER,
} from '../../protocol/pairing.js';
import { SecureChannel } from '../../protocol/secure-channel.js';
import { Spake2PlusVerifier, type SystemKeys, type VersionBinding } from '../../protocol/spake2plus.js';
import { encodeControlFlowCommand, encodeSelectCommand, type ControlFlowReason } from '../../protocol/transaction.js';
import { ChainVerificationError, type EndpointChainVerifier } from '../../pki/endpoint-chain.js';
import type { ReaderTransport } from '../nfc/contactless.js';
import { NfcLinkError } from '../nfc/nfc-link.js';
import type { PairingEvent, PairingReason, PairingResult, VehicleEventLog } from './vehicle-events.js';
import type { VehicleKeyList } from './vehicle-key-list.js';
import type { InstalledVerifier, VehiclePairingMode } from './vehicle-pairing-mode.js';

/** What the car writes at pairing and verifies device chains with (§2, §3.4). */
export interface PairingCredentials {
  /** DER of the vehicle certificate the server issued at provisioning. */
  readonly vehicleCertificate: Buffer;
  /** DER of the Vehicle OEM root. */
  readonly vehicleOemRoot: Buffer;
  readonly chainVerifier: EndpointChainVerifier;
}

/** Everything the pairing reader needs from its car. */
export interface PairingReaderContext {
  readonly vehicleIdentifier: Buffer;
  readonly manufacturer: number;
  /** DK applet versions the car's readers support (§4.2). */
  readonly versions: readonly number[];
  readonly pairingMode: VehiclePairingMode;
  readonly keyList: VehicleKeyList;
  readonly log: VehicleEventLog;
  readonly clock: () => number;
  readonly credentials: () => PairingCredentials | undefined;
  /** What a new owner may do (§6); the car stores it with the pending endpoint. */
  readonly ownerEntitlements: Entitlements;
}

/** Every GET DATA fits in a handful of 256-byte chunks; more is a misbehaving device. */
const MAX_GET_RESPONSE_CHAINING = 32;
const EMPTY = Buffer.alloc(0);
const SELECT_FRAMEWORK = encodeSelectCommand(FRAMEWORK_APPLET_AID);

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

interface Outcome {
  readonly result: Exclude<PairingResult, 'verifier-installed'>;
  readonly reason: PairingReason;
  readonly sw?: number;
  readonly keyId?: string;
  readonly detail?: string;
  /** OP CONTROL FLOW to tell the device (§3.2); none when the link is gone. */
  readonly notify?: { success: boolean; reason: ControlFlowReason };
}

/**
 * The car's pairing reader (§3, car = SPAKE2+ verifier): polls with the pairing ECP frame,
 * selects the framework applet, runs SPAKE2+ against the verifier the server sent, writes the
 * vehicle certificate, root, identifier and key options in the pairing secure channel, reads
 * the endpoint chain, verifies it against its own root and stores the endpoint as pending
 * owner. It counts failed attempts and refuses after seven until a new verifier arrives. Each
 * attempt is recorded in the car's event log.
 */
export class PairingReader {
  readonly readerId: Buffer;
  /** ECP frame of §4.1, subtype 0B: pairing prompt with the vehicle as reader group. */
  readonly pollingFrame: Buffer;
  readonly #context: PairingReaderContext;

  constructor(context: PairingReaderContext) {
    this.#context = context;
    this.readerId = readerIdentifier(context.vehicleIdentifier, u64(READER_LOCATION.console));
    this.pollingFrame = encodeEcpFrame({
      presentAutomatically: true,
      noAuthRequired: false,
      subtype: ECP_SUBTYPE.PAIRING_WITH_ID,
      tci: encodeCarTci({ manufacturer: context.manufacturer, location: READER_LOCATION.console }),
      readerGroupId: context.vehicleIdentifier,
    });
  }

  /** One pairing attempt over `transport`; resolves with the logged event. */
  async pair(transport: ReaderTransport): Promise<PairingEvent> {
    const c = this.#context;
    const started = process.hrtime.bigint();
    const verifier = c.pairingMode.verifier;
    let notified: boolean | undefined;

    const finish = async (outcome: Outcome): Promise<PairingEvent> => {
      if (outcome.notify) notified = await this.#notify(transport, outcome.notify.success, outcome.notify.reason);
      const event: PairingEvent = {
        kind: 'pairing',
        at: c.clock(),
        result: outcome.result,
        reason: outcome.reason,
        ...(outcome.sw === undefined ? {} : { sw: outcome.sw }),
        ...(verifier ? { pairingSessionId: verifier.pairingSessionId } : {}),
        ...(outcome.keyId ? { keyId: outcome.keyId } : {}),
        failedAttempts: c.pairingMode.failedAttempts,
        durationMicros: Number(process.hrtime.bigint() - started) / 1000,
        ...(notified === undefined ? {} : { deviceNotified: notified }),
        ...(outcome.detail ? { detail: outcome.detail } : {}),
      };
      c.log.append(event);
      return event;
    };
    const refuse = (
      reason: PairingReason,
      controlFlow: ControlFlowReason = 'none',
      sw: number = SW.PAIRING_NOT_READY,
    ) => finish({ result: 'refused', reason, sw, notify: { success: false, reason: controlFlow } });

    try {
      if (!(await transport.poll(this.pollingFrame))) return await finish({ result: 'failed', reason: 'no-device' });
      const device = parseFrameworkSelectResponse(okData(await transport.transceive(SELECT_FRAMEWORK)));
      // §3.1: no verifier, or seven failures on this one → not ready (9484).
      if (!verifier) return await refuse('no-verifier');
      if (c.pairingMode.lockedOut) return await refuse('attempts-exhausted', 'attempts-exhausted');
      const credentials = c.credentials();
      if (!credentials) return await refuse('not-provisioned');
      if (device.pairingState !== 'ready') return await refuse('device-not-ready');
      if (
        !device.spake2Versions.includes(SPAKE2PLUS_VERSION_1) ||
        !device.appletVersions.some((version) => c.versions.includes(version))
      ) {
        return await refuse('no-common-version', 'none', SW.BAD_DATA);
      }

      // SPAKE2+ REQUEST: both sides bind 5B and 5C exactly as carried here (§3.3).
      const selectedVersion = u16(SPAKE2PLUS_VERSION_1);
      const versions: VersionBinding = { selectedVersion, supportedVersions: device.appletVersionsBytes };
      const X = parseSpake2RequestResponse(
        okData(
          await transport.transceive(
            encodeSpake2RequestCommand({
              selectedVersion,
              appletVersions: device.appletVersionsBytes,
              salt: verifier.salt,
              scrypt: verifier.cost,
              brand: u16(c.manufacturer),
            }),
          ),
        ),
      );
      const spake = new Spake2PlusVerifier(verifier.record, versions);
      let share: { Y: Buffer; M1: Buffer };
      try {
        share = spake.respond(X);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        return await refuse('invalid-point', 'invalid-point', SW.BAD_DATA);
      }

      // SPAKE2+ VERIFY: the attempt counts from here until the device's evidence M2 matches; a
      // torn VERIFY stays counted, as the device may have seen our evidence.
      c.pairingMode.beginAttempt();
      const verifyResponse = parseResponseApdu(await transport.transceive(encodeSpake2VerifyCommand(share)));
      let systemKeys: SystemKeys;
      try {
        if (verifyResponse.sw !== SW.OK) throw new DeviceRefusal(verifyResponse.sw);
        systemKeys = spake.confirm(parseSpake2VerifyResponse(verifyResponse.data));
      } catch (error) {
        if (!(error instanceof DeviceRefusal) && !(error instanceof ProtocolError)) throw error;
        const exhausted = c.pairingMode.lockedOut;
        return await finish({
          result: 'refused',
          reason: 'wrong-password',
          sw: exhausted ? SW.PAIRING_NOT_READY : error instanceof DeviceRefusal ? error.sw : SW.BAD_DATA,
          notify: { success: false, reason: exhausted ? 'attempts-exhausted' : 'none' },
        });
      }
      c.pairingMode.attemptSucceeded();

      const channel = SecureChannel.afterPairing(
        { kenc: systemKeys.Kenc, kmac: systemKeys.Kmac, krmac: systemKeys.Krmac },
        'reader',
      );
      return await this.#exchangeCertificates(transport, channel, verifier, credentials, finish);
    } catch (error) {
      if (error instanceof NfcLinkError) {
        return await finish({ result: 'failed', reason: error.failure === 'timeout' ? 'timeout' : 'field-lost' });
      }
      if (error instanceof DeviceRefusal) {
        const reason: PairingReason = error.sw === SW.PAIRING_NOT_READY ? 'device-not-ready' : 'device-refused';
        return await finish({
          result: 'failed',
          reason,
          sw: error.sw,
          detail: error.message,
          notify: { success: false, reason: 'none' },
        });
      }
      if (error instanceof ProtocolError) {
        const reason =
          error.code === 'bad-mac' || error.code === 'bad-state' ? 'secure-channel-failure' : 'protocol-error';
        return await finish({
          result: 'failed',
          reason,
          sw: SW.BAD_DATA,
          detail: error.message,
          notify: { success: false, reason: 'none' },
        });
      }
      throw error;
    }
  }

  /** §3.4: WRITE DATA, GET DATA, chain verification, pending owner. */
  async #exchangeCertificates(
    transport: ReaderTransport,
    channel: SecureChannel,
    verifier: InstalledVerifier,
    credentials: PairingCredentials,
    finish: (outcome: Outcome) => Promise<PairingEvent>,
  ): Promise<PairingEvent> {
    const c = this.#context;
    const stream = encodePairingData({
      vehicleCertificate: credentials.vehicleCertificate,
      vehicleOemRoot: credentials.vehicleOemRoot,
      vehicleIdentifier: c.vehicleIdentifier,
      options: {
        privateMailboxSize: PRIVATE_MAILBOX_SIZE,
        confidentialMailboxSize: CONFIDENTIAL_MAILBOX_SIZE,
        entitlements: encodeEntitlements(c.ownerEntitlements),
      },
    });
    for (const block of splitWriteDataBlocks(stream)) {
      channel.unwrapResponseApdu(await transport.transceive(channel.wrapCommand(WRITE_DATA_HEADER, block)));
    }

    // GET DATA: the chain comes back in 256-byte chunks, 61xx + GET RESPONSE (§3.4).
    let response = parseResponseApdu(
      await transport.transceive(channel.wrapCommand({ ...GET_DATA_HEADER, le: 256 }, EMPTY)),
    );
    const parts = [response.data];
    for (let chained = 0; isMoreDataStatus(response.sw); chained++) {
      if (chained >= MAX_GET_RESPONSE_CHAINING) throw new ProtocolError('length', 'GET DATA response too long');
      response = parseResponseApdu(await transport.transceive(encodeGetResponseCommand(response.sw)));
      parts.push(response.data);
    }
    if (response.sw !== SW.OK) {
      channel.close();
      throw new DeviceRefusal(response.sw);
    }
    const chain = parseEndpointChain(channel.unwrapResponse(Buffer.concat(parts)));

    // §2: the car verifies the device chain against its own root, for this vehicle and role.
    let endpoint: ReturnType<EndpointChainVerifier['verify']>;
    try {
      endpoint = credentials.chainVerifier.verify(chain, new Date(c.clock()));
    } catch (error) {
      if (!(error instanceof ChainVerificationError)) throw error;
      return await finish({
        result: 'refused',
        reason: 'chain-refused',
        sw: SW.BAD_DATA,
        detail: `${error.reason}: ${error.message}`,
        notify: { success: false, reason: 'key-unknown' },
      });
    }
    if (endpoint.vehicleIdentifier !== c.vehicleIdentifier.toString('hex')) {
      return await finish({
        result: 'refused',
        reason: 'wrong-vehicle',
        sw: SW.BAD_DATA,
        detail: `the endpoint certificate names vehicle ${endpoint.vehicleIdentifier ?? '(none)'}`,
        notify: { success: false, reason: 'key-unknown' },
      });
    }
    if (endpoint.role !== 'owner') {
      return await finish({
        result: 'refused',
        reason: 'chain-refused',
        sw: SW.BAD_DATA,
        detail: `the endpoint certificate is for a ${endpoint.role ?? 'role-less'} key`,
        notify: { success: false, reason: 'key-unknown' },
      });
    }
    let keyId: string;
    try {
      keyId = c.keyList.enroll(
        {
          endpointPublicKey: endpoint.publicKeyPoint,
          role: 'owner',
          entitlements: c.ownerEntitlements,
          state: 'pending',
          endpointCertificateDigest: sha256(chain[0]),
        },
        'pairing',
      );
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return await finish({
        result: 'refused',
        reason: 'chain-refused',
        sw: SW.BAD_DATA,
        detail: error.message,
        notify: { success: false, reason: 'key-suspended-or-revoked' },
      });
    }
    // One verifier, one owner: pairing mode ends here (§3.1).
    c.pairingMode.complete();
    return await finish({
      result: 'paired',
      reason: 'none',
      sw: SW.OK,
      keyId,
      detail: `pending owner from session ${verifier.pairingSessionId}`,
      notify: { success: true, reason: 'none' },
    });
  }

  async #notify(transport: ReaderTransport, success: boolean, reason: ControlFlowReason): Promise<boolean> {
    try {
      return parseResponseApdu(await transport.transceive(encodeControlFlowCommand({ success, reason }))).sw === SW.OK;
    } catch {
      return false;
    }
  }
}
