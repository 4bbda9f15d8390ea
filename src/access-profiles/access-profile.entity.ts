import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn, VersionColumn } from 'typeorm';
import type { EntitlementsRecord } from './entitlements-record.js';

/** An automaker-defined access level (PROTOCOL.md §6) offered when sharing a key. */
@Entity({ name: 'access_profiles' })
export class AccessProfile {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** Stable name, upper snake case (e.g. UNLOCK_ONLY). */
  @Column({ type: 'varchar', length: 64, unique: true })
  name!: string;

  /** Shown to users when they pick a profile. */
  @Column({ type: 'text' })
  description!: string;

  @Column({ type: 'jsonb' })
  entitlements!: EntitlementsRecord;

  /** Seeded default of PROTOCOL.md §6. */
  @Column({ type: 'boolean', default: false })
  builtin!: boolean;

  @Column({ name: 'retired_at', type: 'timestamptz', nullable: true })
  retiredAt!: Date | null;

  @VersionColumn()
  version!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
