import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The last row of each parallel audit chain. A transaction appends its rows to a chain whose
 * head it locks just before it commits (any chain no other transaction holds), so the lock is
 * held for one statement and the commit, and `verify` can tell a chain whose tail was cut off.
 */
@Entity({ name: 'audit_chain_heads' })
export class AuditChainHead {
  @PrimaryColumn({ type: 'smallint' })
  chain!: number;

  /** Id of the chain's last row; null while the chain is empty. */
  @Column({ name: 'last_id', type: 'bigint', nullable: true })
  lastId!: string | null;

  @Column({ name: 'last_hash', type: 'char', length: 64 })
  lastHash!: string;
}
