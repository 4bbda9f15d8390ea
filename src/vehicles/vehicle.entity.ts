import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { bigintColumn } from '../database/column-transformers.js';

@Entity({ name: 'vehicles' })
export class Vehicle {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'varchar', length: 17, unique: true })
  vin!: string;

  /** 8-byte vehicle identifier (PROTOCOL.md §4.6) as 16 lower-case hex digits. */
  @Column({ name: 'vehicle_identifier', type: 'char', length: 16, unique: true })
  vehicleIdentifier!: string;

  @Column({ name: 'telematics_url', type: 'text' })
  telematicsUrl!: string;

  /** The car's long-term public key (SPKI PEM): verifies its acks and reader signatures. */
  @Column({ name: 'public_key_pem', type: 'text' })
  publicKeyPem!: string;

  @Column({ name: 'certificate_pem', type: 'text' })
  certificatePem!: string;

  /** SHA-256 of the certificate DER, lower-case hex: how the mTLS guard recognises the car. */
  @Column({ name: 'certificate_fingerprint', type: 'char', length: 64, unique: true })
  certificateFingerprint!: string;

  /** Last telematics command sequence number assigned (PROTOCOL.md §8); only moves forward. */
  @Column({ name: 'last_seq', type: 'bigint', default: 0, transformer: bigintColumn })
  lastSeq!: number;

  /** Highest sequence number the car has acknowledged. */
  @Column({ name: 'acked_seq', type: 'bigint', default: 0, transformer: bigintColumn })
  ackedSeq!: number;

  /** Version of the key list the server wants the car to hold; bumped by every key change. */
  @Column({ name: 'key_list_version', type: 'bigint', default: 0, transformer: bigintColumn })
  keyListVersion!: number;

  @Column({ name: 'acked_key_list_version', type: 'bigint', default: 0, transformer: bigintColumn })
  ackedKeyListVersion!: number;

  @Column({ name: 'acked_key_list_digest', type: 'char', length: 64, nullable: true })
  ackedKeyListDigest!: string | null;

  /** Key-list version at which the server last answered a digest mismatch with a full SYNC. */
  @Column({ name: 'sync_key_list_version', type: 'bigint', nullable: true, transformer: bigintColumn })
  syncKeyListVersion!: number | null;

  /** Key-list version the last revocation relay to the owners' devices was sent for (§4.7). */
  @Column({ name: 'relayed_key_list_version', type: 'bigint', default: 0, transformer: bigintColumn })
  relayedKeyListVersion!: number;

  /** Since when the car's acked key-list digest differs from the server's list; null when they agree. */
  @Column({ name: 'key_list_mismatch_since', type: 'timestamptz', nullable: true })
  keyListMismatchSince!: Date | null;

  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true })
  lastSeenAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
