import { randomBytes } from 'node:crypto';

/** Why the relay refused to hand out a mailbox. */
export type InvitationRelayFailure = 'unknown-mailbox' | 'expired' | 'bound-to-another-device';

export class InvitationRelayError extends Error {
  override readonly name = 'InvitationRelayError';

  constructor(readonly failure: InvitationRelayFailure) {
    super(`invitation mailbox refused: ${failure}`);
  }
}

interface Mailbox {
  readonly envelope: Buffer;
  readonly expiresAtMs: number;
  boundDeviceId: string | undefined;
}

/** Mailboxes live at most this long (§7 step 1) **[stand-in]**. */
export const MAX_INVITATION_MAILBOX_MS = 7 * 86_400_000;

/**
 * The Device OEM's store-and-forward mailbox for invitations (PROTOCOL.md §7 step 1, TIGRESS-style):
 * it stores only the AEAD envelope, an opaque random mailbox id and the expiry — never the secret,
 * which travels in the share link's fragment. The first device to read a mailbox binds it; any
 * other device is refused. Expired mailboxes are purged when touched.
 */
export class InvitationRelay {
  readonly #mailboxes = new Map<string, Mailbox>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** Stores an envelope; returns the mailbox id (16 random bytes, base64url). */
  deposit(envelope: Uint8Array, expiresAtMs: number): string {
    const now = this.clock();
    if (!Number.isFinite(expiresAtMs) || expiresAtMs <= now || expiresAtMs > now + MAX_INVITATION_MAILBOX_MS) {
      throw new RangeError('the mailbox expiry must be in the future and within a week');
    }
    const mailboxId = randomBytes(16).toString('base64url');
    this.#mailboxes.set(mailboxId, { envelope: Buffer.from(envelope), expiresAtMs, boundDeviceId: undefined });
    return mailboxId;
  }

  /** Hands the envelope to `deviceId`; the first reader binds the mailbox. */
  collect(mailboxId: string, deviceId: string): Buffer {
    const mailbox = this.#mailboxes.get(mailboxId);
    if (!mailbox) throw new InvitationRelayError('unknown-mailbox');
    if (this.clock() > mailbox.expiresAtMs) {
      this.#mailboxes.delete(mailboxId);
      throw new InvitationRelayError('expired');
    }
    mailbox.boundDeviceId ??= deviceId;
    if (mailbox.boundDeviceId !== deviceId) throw new InvitationRelayError('bound-to-another-device');
    return Buffer.from(mailbox.envelope);
  }

  /** What the relay holds (tests check that no secret is among it). */
  stored(mailboxId: string): { envelope: Buffer; expiresAtMs: number; boundDeviceId?: string } | undefined {
    const mailbox = this.#mailboxes.get(mailboxId);
    if (!mailbox) return undefined;
    return {
      envelope: Buffer.from(mailbox.envelope),
      expiresAtMs: mailbox.expiresAtMs,
      ...(mailbox.boundDeviceId === undefined ? {} : { boundDeviceId: mailbox.boundDeviceId }),
    };
  }
}
