import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import { Vehicle } from '../vehicles/vehicle.entity.js';

export const PAIRING_SESSION_STATUSES = ['open', 'completed', 'superseded'] as const;
export type PairingSessionStatus = (typeof PAIRING_SESSION_STATUSES)[number];

/**
 * An owner pairing session (PROTOCOL.md §3.1). The password is never stored; the verifier
 * (w0, L) is kept sealed only until the car acknowledges it, then erased.
 */
@Entity({ name: 'pairing_sessions' })
@Index('pairing_sessions_vehicle_status', ['vehicleId', 'status'])
export class PairingSession {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'vehicle_id', type: 'uuid' })
  vehicleId!: string;

  @ManyToOne(() => Vehicle, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'vehicle_id' })
  vehicle?: Vehicle;

  @Column({ type: 'varchar', length: 12 })
  status!: PairingSessionStatus;

  @Column({ type: 'bytea' })
  salt!: Buffer;

  @Column({ name: 'scrypt_n', type: 'integer' })
  scryptN!: number;

  @Column({ name: 'scrypt_r', type: 'integer' })
  scryptR!: number;

  @Column({ name: 'scrypt_p', type: 'integer' })
  scryptP!: number;

  /** AES-256-GCM sealed `{ w0, L }`, bound to this row's id; null once the car has it. */
  @Column({ name: 'sealed_verifier', type: 'bytea', nullable: true })
  sealedVerifier!: Buffer | null;

  @Column({ name: 'verifier_delivery_id', type: 'uuid', nullable: true })
  verifierDeliveryId!: string | null;

  @Column({ name: 'verifier_acked_at', type: 'timestamptz', nullable: true })
  verifierAckedAt!: Date | null;

  /** The owner key registered under this session. */
  @Column({ name: 'owner_key_id', type: 'uuid', nullable: true })
  ownerKeyId!: string | null;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'created_by', type: 'varchar', length: 128 })
  createdBy!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
