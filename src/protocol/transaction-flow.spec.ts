import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeResponseApdu, parseCommandApdu, parseResponseApdu, SW } from './apdu.js';
import { EphemeralKeyPair, P256KeyPair, type P256PublicKey } from './crypto/p256.js';
import { ENTITLEMENT_PROFILES, evaluateEntitlements, type Entitlements } from './entitlements.js';
import { keyIdentifier, readerIdentifier } from './identifiers.js';
import {
  decodeRevocationRelay,
  encodeMailboxRequest,
  encodeRevocationRelay,
  parseMailboxResponse,
  PRIVATE_MAILBOX_LAYOUT,
  PRIVATE_MAILBOX_SIZE,
  processMailboxExchange,
} from './mailbox.js';
import { SecureChannel } from './secure-channel.js';
import {
  checkSelectedVersion,
  deriveFastKeys,
  deriveStandardKeys,
  encodeAuth0Command,
  encodeAuth0Response,
  encodeAuth1Command,
  encodeAuth1Response,
  encodeSelectResponse,
  EXCHANGE_HEADER,
  matchFastCryptogram,
  negotiateVersion,
  parseAuth0Command,
  parseAuth0Response,
  parseAuth1Command,
  parseAuth1Response,
  parseSelectResponse,
  signDeviceAuthentication,
  signReaderAuthentication,
  SUPPORTED_PROTOCOL_VERSIONS,
  transactionContext,
  verifyDeviceAuthentication,
  verifyReaderAuthentication,
  type Auth0Command,
  type TransactionCode,
} from './transaction.js';

/**
 * Both sides of §4 wired together through the public API only: a worked example for the
 * simulators (the car is the reader, the phone's SE is the device).
 */
interface CarState {
  readonly vehicleKey: P256KeyPair;
  readonly readerId: Buffer;
  readonly endpoints: {
    keyId: Buffer;
    publicKey: P256PublicKey;
    entitlements: Entitlements;
    kpersistent?: Buffer;
  }[];
}

interface DeviceState {
  readonly endpointKey: P256KeyPair;
  readonly vehiclePublicKey: P256PublicKey;
  privateMailbox: Buffer;
  kpersistent?: Buffer;
}

function setup(): { car: CarState; device: DeviceState } {
  const vehicleKey = P256KeyPair.generate();
  const endpointKey = P256KeyPair.generate();
  const car: CarState = {
    vehicleKey,
    readerId: readerIdentifier(randomBytes(8), Buffer.alloc(8)),
    endpoints: [
      {
        keyId: keyIdentifier(endpointKey.publicPoint),
        publicKey: endpointKey.publicKey,
        entitlements: ENTITLEMENT_PROFILES.UNLOCK_ONLY,
      },
    ],
  };
  const privateMailbox = Buffer.alloc(PRIVATE_MAILBOX_SIZE);
  encodeRevocationRelay([Buffer.alloc(8, 0xee)]).copy(privateMailbox, PRIVATE_MAILBOX_LAYOUT.revocationRelay.offset);
  return { car, device: { endpointKey, vehiclePublicKey: vehicleKey.publicKey, privateMailbox } };
}

/** One tap: returns how it ended. */
function tap(car: CarState, device: DeviceState, code: TransactionCode): 'fast' | 'standard' | 'denied' {
  // SELECT
  const deviceVersions = parseSelectResponse(encodeSelectResponse(SUPPORTED_PROTOCOL_VERSIONS));
  const selectedVersion = negotiateVersion(SUPPORTED_PROTOCOL_VERSIONS, deviceVersions);

  // AUTH0 (car → device)
  const readerEphemeral = EphemeralKeyPair.generate();
  const auth0: Auth0Command = {
    requestFast: code !== 'engine-start',
    transactionCode: code,
    selectedVersion,
    readerEphemeralPublicKey: readerEphemeral.publicPoint,
    transactionId: randomBytes(16),
    readerId: car.readerId,
  };
  const auth0OnDevice = parseAuth0Command(encodeAuth0Command(auth0));
  checkSelectedVersion(auth0OnDevice.selectedVersion, deviceVersions);
  const endpointEphemeral = EphemeralKeyPair.generate();
  const deviceContext = transactionContext(
    auth0OnDevice,
    { endpointEphemeralPublicKey: endpointEphemeral.publicPoint },
    deviceVersions,
  );
  const fastOnDevice = device.kpersistent
    ? deriveFastKeys(device.kpersistent, {
        ...deviceContext,
        readerLongTermPublicKey: device.vehiclePublicKey.point,
        endpointLongTermPublicKey: device.endpointKey.publicPoint,
      })
    : undefined;
  const auth0Response = encodeAuth0Response({
    endpointEphemeralPublicKey: endpointEphemeral.publicPoint,
    // No Kpersistent for this reader → a random cryptogram (privacy, §4.2).
    ...(auth0OnDevice.requestFast ? { cryptogram: fastOnDevice?.cryptogram ?? randomBytes(16) } : {}),
  });

  // Car: fast path?
  const response = parseAuth0Response(auth0Response);
  const context = transactionContext(auth0, response, deviceVersions);
  if (response.cryptogram && code !== 'engine-start') {
    const candidates = car.endpoints.flatMap((e) =>
      e.kpersistent ? [{ ...e, kpersistent: e.kpersistent, endpointLongTermPublicKey: e.publicKey.point }] : [],
    );
    const match = matchFastCryptogram(candidates, context, car.vehicleKey.publicPoint, response.cryptogram);
    if (match) {
      const reader = SecureChannel.afterFast(match.keys, 'reader');
      const deviceChannel = SecureChannel.afterFast(fastOnDevice!, 'device');
      const apdu = reader.wrapCommand(EXCHANGE_HEADER, encodeMailboxRequest({ operations: [], more: false }));
      const exchanged = processMailboxExchange(
        device.privateMailbox,
        deviceChannel.unwrapCommand(apdu, EXCHANGE_HEADER),
      );
      expect(parseMailboxResponse(reader.unwrapResponse(deviceChannel.wrapResponse(exchanged.response))).status).toBe(
        'ok',
      );
      const fastDecision = evaluateEntitlements(match.candidate.entitlements, code, 1_750_000_000, 600, 3);
      return fastDecision.allowed ? 'fast' : 'denied';
    }
  }

  // AUTH1 (car → device)
  const auth1 = encodeAuth1Command(signReaderAuthentication(car.vehicleKey, context));
  const readerSignature = parseAuth1Command(parseCommandApdu(auth1));
  expect(verifyReaderAuthentication(device.vehiclePublicKey, deviceContext, readerSignature)).toBe(true);
  const deviceKeys = deriveStandardKeys(
    endpointEphemeral.sharedSecretX(auth0OnDevice.readerEphemeralPublicKey),
    deviceContext,
  );
  device.kpersistent = deviceKeys.kpersistent;
  const deviceChannel = SecureChannel.afterAuth1(deviceKeys, 'device');
  const auth1Response = encodeResponseApdu(
    deviceChannel.wrapResponse(
      encodeAuth1Response({
        keyIdentifier: keyIdentifier(device.endpointKey.publicPoint),
        deviceSignature: signDeviceAuthentication(device.endpointKey, deviceContext),
      }),
    ),
    SW.OK,
  );

  // Car: decrypt, identify, verify, decide.
  const carKeys = deriveStandardKeys(readerEphemeral.sharedSecretX(response.endpointEphemeralPublicKey), context);
  const reader = SecureChannel.afterAuth1(carKeys, 'reader');
  const { data, sw } = parseResponseApdu(auth1Response);
  expect(sw).toBe(SW.OK);
  const plaintext = parseAuth1Response(reader.unwrapResponse(data), 'sha256-8');
  const endpoint = car.endpoints.find((e) => e.keyId.equals(plaintext.keyIdentifier));
  expect(endpoint).toBeDefined();
  expect(verifyDeviceAuthentication(endpoint!.publicKey, context, plaintext.deviceSignature)).toBe(true);
  // Authenticated and on the allow-list: Kpersistent replaces the old one (§4.3). The entitlement
  // decision below concerns this transaction only.
  endpoint!.kpersistent = carKeys.kpersistent;

  // EXCHANGE: read the revocation relay from the private mailbox.
  const { offset, length } = PRIVATE_MAILBOX_LAYOUT.revocationRelay;
  const request = encodeMailboxRequest({ operations: [{ kind: 'read', offset, length }], more: false });
  const payload = deviceChannel.unwrapCommand(reader.wrapCommand(EXCHANGE_HEADER, request), EXCHANGE_HEADER);
  const exchanged = processMailboxExchange(device.privateMailbox, payload);
  const mailboxResponse = parseMailboxResponse(reader.unwrapResponse(deviceChannel.wrapResponse(exchanged.response)));
  expect(decodeRevocationRelay(mailboxResponse.reads[0])).toEqual([Buffer.alloc(8, 0xee)]);

  const decision = evaluateEntitlements(endpoint!.entitlements, code, 1_750_000_000, 600, 3);
  return decision.allowed ? 'standard' : 'denied';
}

describe('a standard then a fast transaction through the public API', () => {
  it('first tap is standard, the next is fast, engine start always standard and entitlement-checked', () => {
    const { car, device } = setup();
    expect(tap(car, device, 'unlock')).toBe('standard');
    expect(tap(car, device, 'unlock')).toBe('fast');
    expect(tap(car, device, 'lock')).toBe('fast');
    expect(tap(car, device, 'engine-start')).toBe('denied'); // UNLOCK_ONLY has no engine start
    car.endpoints[0].entitlements = ENTITLEMENT_PROFILES.UNLOCK_AND_DRIVE;
    expect(tap(car, device, 'engine-start')).toBe('standard');
  });

  it('a car that lost Kpersistent falls back to the standard transaction', () => {
    const { car, device } = setup();
    expect(tap(car, device, 'trunk')).toBe('denied'); // UNLOCK_ONLY: no trunk, but the keys were still agreed
    delete car.endpoints[0].kpersistent;
    expect(tap(car, device, 'unlock')).toBe('standard');
    expect(tap(car, device, 'unlock')).toBe('fast');
  });
});
