import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from 'typeorm';
import { bigintColumn } from '../database/column-transformers.js';
import type { SyncKeyEntry, TelematicsCommandName } from '../protocol/telematics-messages.js';

export const DELIVERY_STATUSES = ['pending', 'sent', 'acked', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Fields of a command beyond the envelope (PROTOCOL.md §8); never secrets in clear. */
export interface CommandFields {
  keyId?: string;
  state?: string;
  entitlements?: string;
  /** PAIRING_VERIFIER: the session whose sealed verifier the worker puts in the command. */
  pairingSessionId?: string;
  /** ADD_KEY: endpoint public key (65 bytes, hex) and role. */
  endpointPublicKey?: string;
  role?: string;
  /** SYNC: the server's key list (the car aligns the keys it names). */
  keys?: SyncKeyEntry[];
}

/**
 * One command to one car and its fate: pending → sent → acked (or failed when the car refused
 * it). `seq` is assigned in the transaction that created it, so commands reach the car in order.
 */
@Entity({ name: 'deliveries' })
@Unique('deliveries_vehicle_seq', ['vehicleId', 'seq'])
@Index('deliveries_open', ['nextAttemptAt'], { where: "status IN ('pending', 'sent')" })
export class Delivery {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'vehicle_id', type: 'uuid' })
  vehicleId!: string;

  @Column({ type: 'bigint', transformer: bigintColumn })
  seq!: number;

  @Column({ type: 'varchar', length: 24 })
  command!: TelematicsCommandName;

  @Column({ type: 'jsonb', default: {} })
  fields!: CommandFields;

  @Column({ name: 'key_list_version', type: 'bigint', transformer: bigintColumn })
  keyListVersion!: number;

  @Column({ type: 'varchar', length: 8, default: 'pending' })
  status!: DeliveryStatus;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'next_attempt_at', type: 'timestamptz' })
  nextAttemptAt!: Date;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  /** How many times the sweeper had to re-enqueue it (names its job ids). */
  @Column({ name: 'sweeps', type: 'integer', default: 0 })
  sweeps!: number;

  @Column({ name: 'sent_at', type: 'timestamptz', nullable: true })
  sentAt!: Date | null;

  @Column({ name: 'acked_at', type: 'timestamptz', nullable: true })
  ackedAt!: Date | null;

  @Column({ name: 'ack_key_list_digest', type: 'char', length: 64, nullable: true })
  ackKeyListDigest!: string | null;

  @Column({ name: 'correlation_id', type: 'varchar', length: 64, nullable: true })
  correlationId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
