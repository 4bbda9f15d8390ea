import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * Append-only, hash-chained audit log: `hash = SHA-256(prev_hash ‖ canonical JSON of the row)`,
 * `prev_hash` being the hash of the previous row of the same chain. Rows are never updated; a
 * database trigger refuses UPDATE and DELETE.
 */
@Entity({ name: 'audit_events' })
@Index('audit_events_chain_id', ['chain', 'id'])
export class AuditEvent {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' })
  id!: string;

  /**
   * Which of the parallel chains the row extends: one per transaction, so concurrent
   * transactions append side by side instead of queueing on one lock until commit.
   */
  @Column({ type: 'smallint', default: 0 })
  chain!: number;

  @Column({ name: 'occurred_at', type: 'timestamptz' })
  occurredAt!: Date;

  @Column({ name: 'actor_type', type: 'varchar', length: 16 })
  actorType!: string;

  @Column({ name: 'actor_id', type: 'varchar', length: 128 })
  actorId!: string;

  @Column({ type: 'varchar', length: 64 })
  action!: string;

  @Column({ name: 'subject_type', type: 'varchar', length: 32 })
  subjectType!: string;

  @Column({ name: 'subject_id', type: 'varchar', length: 64 })
  subjectId!: string;

  @Column({ type: 'jsonb', default: {} })
  details!: Record<string, unknown>;

  @Column({ name: 'correlation_id', type: 'varchar', length: 64, nullable: true })
  correlationId!: string | null;

  @Column({ name: 'prev_hash', type: 'char', length: 64 })
  prevHash!: string;

  @Column({ type: 'char', length: 64 })
  hash!: string;
}
