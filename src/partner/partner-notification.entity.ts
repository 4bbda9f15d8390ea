import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, Unique, UpdateDateColumn } from 'typeorm';

export const PARTNER_NOTIFICATION_TYPES = [
  'KEY_ACTIVATED',
  'KEY_SUSPENDED',
  'KEY_RESUMED',
  'KEY_TERMINATING',
  'KEY_TERMINATED',
  'FRIEND_KEY_ENROLLED',
  'ACCESS_PROFILE_CHANGED',
  'REVOCATION_RELAY',
] as const;
export type PartnerNotificationType = (typeof PARTNER_NOTIFICATION_TYPES)[number];

/** `sending`: claimed by one worker until `next_attempt_at` (a lease), so no two send it at once. */
export type PartnerNotificationStatus = 'pending' | 'sending' | 'delivered' | 'failed';

/**
 * A notification to the Device OEM partner that owns a key. `id` is the event id the partner
 * deduplicates on; `keyVersion` orders the notifications of one key (it only moves forward).
 */
@Entity({ name: 'partner_notifications' })
@Unique('partner_notifications_key_version', ['keyIdentifier', 'keyVersion'])
@Index('partner_notifications_open', ['nextAttemptAt'], { where: "status = 'pending'" })
export class PartnerNotification {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'varchar', length: 64 })
  partner!: string;

  @Column({ name: 'key_identifier', type: 'varchar', length: 16 })
  keyIdentifier!: string;

  @Column({ name: 'key_version', type: 'integer' })
  keyVersion!: number;

  @Column({ type: 'varchar', length: 32 })
  type!: PartnerNotificationType;

  /** What the partner receives besides the envelope (vehicle id, state); never secrets. */
  @Column({ type: 'jsonb', default: {} })
  payload!: Record<string, unknown>;

  @Column({ type: 'varchar', length: 10, default: 'pending' })
  status!: PartnerNotificationStatus;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'next_attempt_at', type: 'timestamptz' })
  nextAttemptAt!: Date;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  @Column({ type: 'integer', default: 0 })
  sweeps!: number;

  @Column({ name: 'delivered_at', type: 'timestamptz', nullable: true })
  deliveredAt!: Date | null;

  @Column({ name: 'correlation_id', type: 'varchar', length: 64, nullable: true })
  correlationId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
