import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Delivery, type CommandFields } from './delivery.entity.js';
import type { OutboxTopic } from './outbox-message.entity.js';
import { outboxRowsWritten } from './outbox-wake.js';
import type { TelematicsCommandName } from '../protocol/telematics-messages.js';

/**
 * The part of a statement that writes the outbox row of a delivery or notification (the SQL
 * expressions name its delivery id and correlation id); the caller then calls
 * `outboxRowsWritten`, so the relay wakes when the transaction commits.
 */
export function outboxRowSql(topic: OutboxTopic, deliveryId: string, correlationId: string): string {
  return `INSERT INTO outbox (topic, delivery_id, correlation_id) SELECT '${topic}', ${deliveryId}, ${correlationId}`;
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
  /**
   * One statement: the vehicle's next seq (the row update locks the vehicle, so seqs are gap-free
   * and commit in order), the delivery, its outbox row and the relay's wake-up.
   */
  async enqueue(manager: EntityManager, request: VehicleCommandRequest): Promise<Delivery> {
    const [queued] = await manager.query<
      Array<{ id: string; seq: string; keyListVersion: string; createdAt: Date; vehicleId: string }>
    >(
      `WITH vehicle AS (
         UPDATE vehicles
            SET last_seq = last_seq + 1, key_list_version = key_list_version + $2, updated_at = now()
          WHERE id = $1
      RETURNING id, last_seq, key_list_version),
       delivery AS (
         INSERT INTO deliveries (vehicle_id, seq, command, fields, key_list_version, status, attempts, next_attempt_at, correlation_id)
         SELECT id, last_seq, $3, $4::jsonb, key_list_version, 'pending', 0, now(), $5 FROM vehicle
      RETURNING id, vehicle_id, seq, key_list_version, created_at),
       published AS (${outboxRowSql('vehicle-command', 'id', '$5')} FROM delivery)
       SELECT id, vehicle_id AS "vehicleId", seq::text AS seq, key_list_version::text AS "keyListVersion",
              created_at AS "createdAt" FROM delivery`,
      [
        request.vehicleId,
        request.changesKeyList ? 1 : 0,
        request.command,
        JSON.stringify(request.fields ?? {}),
        request.correlationId ?? null,
      ],
    );
    if (!queued) throw new Error(`vehicle ${request.vehicleId} vanished inside its transaction`);
    outboxRowsWritten(manager);
    return manager.create(Delivery, {
      id: queued.id,
      vehicleId: queued.vehicleId,
      seq: Number(queued.seq),
      command: request.command,
      fields: request.fields ?? {},
      keyListVersion: Number(queued.keyListVersion),
      status: 'pending',
      attempts: 0,
      nextAttemptAt: queued.createdAt,
      lastError: null,
      sweeps: 0,
      sentAt: null,
      ackedAt: null,
      ackKeyListDigest: null,
      correlationId: request.correlationId ?? null,
      createdAt: queued.createdAt,
      updatedAt: queued.createdAt,
    });
  }
}
