import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Delivery, type CommandFields } from './delivery.entity.js';
import type { OutboxTopic } from './outbox-message.entity.js';
import { outboxRowsWritten } from './outbox-wake.js';
import type { TelematicsCommandName } from '../protocol/telematics-messages.js';
import { prepared, runPrepared } from '../database/prepared.js';

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

/** SQL expressions (`$n` parameters, literals or columns) naming what `commandCtes` writes. */
export interface CommandSql {
  vehicleId: string;
  /** 1 when the command changes the car's key list (the vehicle's key-list version moves), else 0. */
  keyListDelta: string;
  command: string;
  fields: string;
  correlationId: string;
}

/**
 * The CTEs `vehicle`, `delivery` and `delivery_outbox` of a statement that queues a command for
 * a car: the vehicle's next seq (the row update locks the vehicle, so seqs are gap-free and
 * commit in order), the delivery and its outbox row. The caller then calls `outboxRowsWritten`.
 */
export function commandCtes(sql: CommandSql): string {
  return `vehicle AS (
       UPDATE vehicles
          SET last_seq = last_seq + 1, key_list_version = key_list_version + ${sql.keyListDelta}, updated_at = now()
        WHERE id = ${sql.vehicleId}
    RETURNING id, last_seq, key_list_version),
     delivery AS (
       INSERT INTO deliveries (vehicle_id, seq, command, fields, key_list_version, status, attempts, next_attempt_at, correlation_id)
       SELECT id, last_seq, ${sql.command}, ${sql.fields}, key_list_version, 'pending', 0, now(), ${sql.correlationId} FROM vehicle
    RETURNING id, vehicle_id, seq, key_list_version, created_at),
     delivery_outbox AS (${outboxRowSql('vehicle-command', 'id', sql.correlationId)} FROM delivery)`;
}

/** The columns of the `delivery` CTE a caller reads back. */
export const QUEUED_DELIVERY_COLUMNS = `delivery.id AS "deliveryId", delivery.seq::text AS seq,
  delivery.key_list_version::text AS "keyListVersion", delivery.created_at AS "createdAt"`;

export interface QueuedDeliveryRow {
  deliveryId: string;
  seq: string;
  keyListVersion: string;
  createdAt: Date;
}

/**
 * Records a command for a car inside the caller's transaction, in one statement (see
 * `commandCtes`). Nothing here touches Redis.
 */
const ENQUEUE_COMMAND = prepared(
  `WITH ${commandCtes({ vehicleId: '$1', keyListDelta: '$2', command: '$3', fields: '$4::jsonb', correlationId: '$5' })}
   SELECT ${QUEUED_DELIVERY_COLUMNS} FROM delivery`,
);

@Injectable()
export class CommandOutboxService {
  async enqueue(manager: EntityManager, request: VehicleCommandRequest): Promise<Delivery> {
    const [queued] = await runPrepared<QueuedDeliveryRow>(manager, ENQUEUE_COMMAND, [
      request.vehicleId,
      request.changesKeyList ? 1 : 0,
      request.command,
      JSON.stringify(request.fields ?? {}),
      request.correlationId ?? null,
    ]);
    if (!queued) throw new Error(`vehicle ${request.vehicleId} vanished inside its transaction`);
    outboxRowsWritten(manager);
    return manager.create(Delivery, {
      id: queued.deliveryId,
      vehicleId: request.vehicleId,
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
