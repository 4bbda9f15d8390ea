import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { P256KeyPair } from './crypto/p256.js';
import { ENTITLEMENT_PROFILES, encodeEntitlements } from './entitlements.js';
import { ProtocolError } from './errors.js';
import { decodeFriendAttestationSlotBlob, encodeFriendAttestationSlotBlob } from './friend-attestation-slot.js';
import { signFriendAttestation, verifyFriendAttestation } from './friend-attestation.js';
import {
  MAX_INVITATION_SECONDS,
  decodeInvitationPayload,
  encodeInvitationPayload,
  encodeShareLink,
  openInvitation,
  parseShareLink,
  sealInvitation,
  type InvitationPayload,
} from './share-invitation.js';

/** §7 invitation, envelope, share link and mailbox attestation slot: parsers raise only ProtocolError; values round-trip. */
const RUNS = { numRuns: 10_000 } as const;

function onlyProtocolErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
}

const PROFILES = Object.values(ENTITLEMENT_PROFILES).map((profile) => encodeEntitlements(profile));
const VEHICLE_KEY = Buffer.from(P256KeyPair.generate().publicPoint);

const payloadArb: fc.Arbitrary<InvitationPayload> = fc
  .record({
    vehicleIdentifier: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    ownerKeyId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    notBefore: fc.integer({ min: 0, max: MAX_INVITATION_SECONDS - 1 }),
    span: fc.integer({ min: 1, max: 10 ** 9 }),
    profileName: fc.stringMatching(/^[A-Z0-9_]{1,32}$/),
    entitlements: fc.constantFrom(...PROFILES),
  })
  .map((r) => ({
    vehicleIdentifier: Buffer.from(r.vehicleIdentifier),
    vehiclePublicKey: VEHICLE_KEY,
    ownerKeyId: Buffer.from(r.ownerKeyId),
    notBefore: new Date(r.notBefore * 1000),
    notAfter: new Date(Math.min(MAX_INVITATION_SECONDS, r.notBefore + r.span) * 1000),
    profileName: r.profileName,
    entitlements: r.entitlements,
  }));

/** Valid encodings with one byte changed, cut short or extended. */
function mutated(arb: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(arb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'extend'))
    .map(([bytes, at, value, how]) => {
      const copy = Buffer.from(bytes);
      const index = at % Math.max(1, copy.length);
      if (how === 'cut') return copy.subarray(0, index);
      if (how === 'extend') return Buffer.concat([copy, Buffer.from([value])]);
      copy[index] = value;
      return copy;
    });
}

describe('share invitation codec (§7 step 1)', () => {
  it('round-trips every valid payload', () => {
    fc.assert(
      fc.property(payloadArb, (payload) => {
        expect(decodeInvitationPayload(encodeInvitationPayload(payload))).toEqual(payload);
      }),
      RUNS,
    );
  });

  it('decoding random or mutated bytes raises only ProtocolError', () => {
    const valid = payloadArb.map((payload) => encodeInvitationPayload(payload));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          mutated(valid),
        ),
        (bytes) => onlyProtocolErrors(() => decodeInvitationPayload(bytes)),
      ),
      RUNS,
    );
  });

  it('seals and opens with the secret and PIN; any other secret, PIN or byte is refused', () => {
    const pinArb = fc.option(fc.stringMatching(/^\d{6}$/), { nil: undefined });
    fc.assert(
      fc.property(payloadArb, pinArb, fc.nat(), (payload, pin, at) => {
        const { secret, envelope } = sealInvitation(payload, pin);
        expect(openInvitation(envelope, secret, pin)).toEqual(payload);
        const tampered = Buffer.from(envelope);
        tampered[at % tampered.length] ^= 0x01;
        expect(() => openInvitation(tampered, secret, pin)).toThrow(ProtocolError);
        if (pin !== undefined) {
          const wrong = pin === '000000' ? '000001' : '000000';
          expect(() => openInvitation(envelope, secret, wrong)).toThrow(/does not open/);
          expect(() => openInvitation(envelope, secret)).toThrow(/needs its PIN/);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('opening random envelopes, secrets and PINs raises only ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ minLength: 30, maxLength: 34 }),
        fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
        (envelope, secret, pin) => onlyProtocolErrors(() => openInvitation(envelope, secret, pin)),
      ),
      RUNS,
    );
  });

  it('share links keep the secret in the fragment and parse back; anything else raises only ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_-]{16,64}$/),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (mailboxId, secret) => {
          const link = encodeShareLink('https://oem.example/', mailboxId, secret);
          expect(new URL(link).pathname).toBe(`/share/${mailboxId}`);
          expect(parseShareLink(link)).toEqual({ mailboxId, secret: Buffer.from(secret) });
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.webUrl({ withFragments: true })), (link) =>
        onlyProtocolErrors(() => parseShareLink(link)),
      ),
      RUNS,
    );
  });
});

describe('friend attestation mailbox slot (§4.7, §7 step 5)', () => {
  const owner = P256KeyPair.generate();
  const friend = Buffer.from(P256KeyPair.generate().publicPoint);
  const vehicle = Buffer.from('0102030405060708', 'hex');
  const signed = (entitlements: Buffer, notBefore: number) =>
    signFriendAttestation(
      {
        vehicleIdentifier: vehicle,
        endpointPublicKey: friend,
        entitlements,
        notBefore: new Date(notBefore * 1000),
        notAfter: new Date((notBefore + 86_400) * 1000),
        ownerKeyId: Buffer.alloc(8, 7),
      },
      owner,
    );

  it('fits the slot and rebuilds the exact bytes the owner signed, for this car only', () => {
    for (const entitlements of PROFILES) {
      const der = signed(entitlements, 1_800_000_000);
      const blob = encodeFriendAttestationSlotBlob(der);
      expect(blob.length).toBeLessThanOrEqual(190);
      const rebuilt = decodeFriendAttestationSlotBlob(blob, vehicle);
      expect(verifyFriendAttestation(rebuilt, owner.publicKey)).toBe(true);
      const elsewhere = decodeFriendAttestationSlotBlob(blob, Buffer.alloc(8));
      expect(verifyFriendAttestation(elsewhere, owner.publicKey)).toBe(false);
    }
  });

  it('decoding random or mutated slot blobs raises only ProtocolError', () => {
    const valid = fc
      .tuple(fc.constantFrom(...PROFILES), fc.integer({ min: 0, max: 4_000_000_000 }))
      .map(([entitlements, notBefore]) => encodeFriendAttestationSlotBlob(signed(entitlements, notBefore)));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          mutated(valid),
        ),
        (blob) => onlyProtocolErrors(() => decodeFriendAttestationSlotBlob(blob, vehicle)),
      ),
      RUNS,
    );
  });
});
