import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Delivery, type CommandFields } from './delivery.entity.js';
import { OutboxMessage } from './outbox-message.entity.js';
import type { TelematicsCommandName } from '../protocol/telematics-messages.js';

/** PostgreSQL channel the relay listens on, so it wakes at commit instead of at its next poll. */
export const OUTBOX_CHANNEL = 'dks_outbox';

/** Transactions (by their query runner) that have already asked to wake the relay. */
const relayWoken = new WeakSet<object>();

/**
 * Writes the outbox row that publishes a delivery or notification, in the caller's transaction,
 * and wakes the relay when that transaction commits. One plain INSERT (nothing is read back).
 * Once per transaction is enough for the wake-up: PostgreSQL delivers one notification per
 * channel and payload at commit however often it was sent.
 */
export async function writeOutboxRow(
  manager: EntityManager,
  row: Pick<OutboxMessage, 'topic' | 'deliveryId' | 'correlationId'>,
): Promise<void> {
  await manager.query('INSERT INTO outbox (topic, delivery_id, correlation_id) VALUES ($1, $2, $3)', [
    row.topic,
    row.deliveryId,
    row.correlationId,
  ]);
  const runner = manager.queryRunner;
  if (runner?.isTransactionActive) {
    if (relayWoken.has(runner)) return;
    relayWoken.add(runner);
  }
  await manager.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, '']);
}

export interface VehicleCommandRequest {
  vehicleId: string;
  command: TelematicsCommandName;
  fields?: CommandFields;
  /** The command changes the car's key list: bump the vehicle's key-list version. */
  changesKeyList?: boolean;
  correlationId?: string | null;
}

/**
 * Records a command for a car inside the caller's transaction: assigns the next `seq` of the
 * vehicle (the row update locks the vehicle, so seqs are gap-free and commit in order), writes
 * the delivery and its outbox row. Nothing here touches Redis.
 */
@Injectable()
export class CommandOutboxService {
  async enqueue(manager: EntityManager, request: VehicleCommandRequest): Promise<Delivery> {
    const rows = await manager.query<[Array<{ seq: string; keyListVersion: string }>, number]>(
      `UPDATE vehicles
          SET last_seq = last_seq + 1,
              key_list_version = key_list_version + $2,
              updated_at = now()
        WHERE id = $1
    RETURNING last_seq::text AS seq, key_list_version::text AS "keyListVersion"`,
      [request.vehicleId, request.changesKeyList ? 1 : 0],
    );
    const [updated] = rows[0];
    if (!updated) throw new Error(`vehicle ${request.vehicleId} vanished inside its transaction`);
    const delivery = manager.create(Delivery, {
      vehicleId: request.vehicleId,
      seq: Number(updated.seq),
      command: request.command,
      fields: request.fields ?? {},
      keyListVersion: Number(updated.keyListVersion),
      status: 'pending',
      attempts: 0,
      nextAttemptAt: new Date(),
      correlationId: request.correlationId ?? null,
    });
    // insert, not save: a new row needs no persistence diff; the generated id is merged back in.
    await manager.insert(Delivery, delivery);
    await writeOutboxRow(manager, {
      topic: 'vehicle-command',
      deliveryId: delivery.id,
      correlationId: request.correlationId ?? null,
    });
    return delivery;
  }
}
