import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
  VersionColumn,
} from 'typeorm';
import { AccessProfile } from '../access-profiles/access-profile.entity.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import type { KeyRole, KeyState } from './key-state.js';

/** A digital key: one endpoint key pair in one device's secure element, for one vehicle. */
@Entity({ name: 'digital_keys' })
@Index('digital_keys_vehicle_state', ['vehicleId', 'state'])
export class DigitalKey {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** Key identifier (PROTOCOL.md §4.6) as lower-case hex: the public `keyId`. */
  @Column({ name: 'key_identifier', type: 'varchar', length: 16, unique: true })
  keyIdentifier!: string;

  @Column({ name: 'vehicle_id', type: 'uuid' })
  vehicleId!: string;

  @ManyToOne(() => Vehicle, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'vehicle_id' })
  vehicle?: Vehicle;

  @Column({ type: 'varchar', length: 8 })
  role!: KeyRole;

  @Column({ type: 'varchar', length: 12 })
  state!: KeyState;

  /** Optimistic concurrency: every transition bumps it under a row lock. */
  @VersionColumn()
  version!: number;

  /** Name of the Device OEM partner that registered the key (tenant boundary). */
  @Column({ type: 'varchar', length: 64 })
  partner!: string;

  @Column({ name: 'endpoint_certificate_pem', type: 'text' })
  endpointCertificatePem!: string;

  @Column({ name: 'access_profile_id', type: 'uuid', nullable: true })
  accessProfileId!: string | null;

  @ManyToOne(() => AccessProfile, { onDelete: 'RESTRICT', nullable: true })
  @JoinColumn({ name: 'access_profile_id' })
  accessProfile?: AccessProfile | null;

  /** Entitlements TLV (PROTOCOL.md §6) as granted. */
  @Column({ type: 'bytea', nullable: true })
  entitlements!: Buffer | null;

  /** The owner key a friend key was shared from. */
  @Column({ name: 'owner_key_id', type: 'uuid', nullable: true })
  ownerKeyId!: string | null;

  @Column({ name: 'not_before', type: 'timestamptz', nullable: true })
  notBefore!: Date | null;

  @Column({ name: 'not_after', type: 'timestamptz', nullable: true })
  notAfter!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

/** Every column of `digital_keys` (of table alias `k`, if given), named as the entity's properties, for raw statements. */
export function digitalKeyColumns(k = ''): string {
  const c = k ? `${k}.` : '';
  return `${c}id, ${c}key_identifier AS "keyIdentifier", ${c}vehicle_id AS "vehicleId", ${c}role, ${c}state, ${c}version,
          ${c}partner, ${c}endpoint_certificate_pem AS "endpointCertificatePem", ${c}access_profile_id AS "accessProfileId",
          ${c}entitlements, ${c}owner_key_id AS "ownerKeyId", ${c}not_before AS "notBefore", ${c}not_after AS "notAfter",
          ${c}created_at AS "createdAt", ${c}updated_at AS "updatedAt"`;
}
