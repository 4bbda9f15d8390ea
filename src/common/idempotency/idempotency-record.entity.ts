import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** A request seen with an `Idempotency-Key`, and the response it got. */
@Entity({ name: 'idempotency_keys' })
@Index('idempotency_keys_created', ['createdAt'])
export class IdempotencyRecord {
  /** Who sent it (`partner:<name>` or `operator:<subject>`): keys are scoped per caller. */
  @PrimaryColumn({ type: 'varchar', length: 128 })
  principal!: string;

  @PrimaryColumn({ type: 'varchar', length: 255 })
  key!: string;

  /** SHA-256 over method, route and canonical body. */
  @Column({ name: 'request_hash', type: 'char', length: 64 })
  requestHash!: string;

  @Column({ type: 'varchar', length: 12 })
  status!: 'in-progress' | 'completed';

  @Column({ name: 'response_status', type: 'integer', nullable: true })
  responseStatus!: number | null;

  @Column({ name: 'response_body', type: 'jsonb', nullable: true })
  responseBody!: unknown;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;
}
