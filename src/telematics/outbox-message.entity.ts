import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One effect to hand to the queue, written in the same transaction as the state change that
 * caused it (transactional outbox). The relay publishes it with the row id as the BullMQ job id.
 */
@Entity({ name: 'outbox' })
@Index('outbox_unpublished', ['createdAt'], { where: 'published_at IS NULL' })
export class OutboxMessage {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'varchar', length: 32 })
  topic!: OutboxTopic;

  /** The delivery (vehicle command) or partner notification this row publishes. */
  @Column({ name: 'delivery_id', type: 'uuid' })
  deliveryId!: string;

  @Column({ name: 'correlation_id', type: 'varchar', length: 64, nullable: true })
  correlationId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'published_at', type: 'timestamptz', nullable: true })
  publishedAt!: Date | null;
}

export type OutboxTopic = 'vehicle-command' | 'partner-notification';
