import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { outboxRowSql } from '../telematics/command-outbox.service.js';
import { outboxRowsWritten } from '../telematics/outbox-wake.js';
import type { PartnerNotificationType } from './partner-notification.entity.js';
import { prepared, runPrepared } from '../database/prepared.js';

export interface NotificationRequest {
  partner: string;
  keyIdentifier: string;
  keyVersion: number;
  vehicleIdentifier: string;
  state: string;
  type: PartnerNotificationType;
  correlationId?: string | null;
  /** REVOCATION_RELAY: what the owner device writes at the head of its private mailbox (§4.7). */
  revocationRelay?: { keyListVersion: number; keyIds: string[] };
}

/** What the partner is told besides the key and its version (the signed message's body). */
export function notificationPayload(
  request: Pick<NotificationRequest, 'vehicleIdentifier' | 'state' | 'revocationRelay'>,
): string {
  return JSON.stringify({
    vehicleId: request.vehicleIdentifier,
    state: request.state,
    ...(request.revocationRelay ? { revocationRelay: request.revocationRelay } : {}),
  });
}

/** SQL expressions naming what `notificationCtes` writes; `from` is the FROM clause of its rows. */
export interface NotificationSql {
  from: string;
  partner: string;
  keyIdentifier: string;
  keyVersion: string;
  type: string;
  payload: string;
  correlationId: string;
}

/**
 * The CTEs `notification` and `notification_outbox` of a statement that records one
 * notification (with its outbox row) per row of `from`, so a state change and what the partner
 * is told of it can be one statement. The caller then calls `outboxRowsWritten`.
 */
export function notificationCtes(sql: NotificationSql): string {
  return `notification AS (
       INSERT INTO partner_notifications
         (id, partner, key_identifier, key_version, type, payload, status, attempts, next_attempt_at, correlation_id)
       SELECT gen_random_uuid(), ${sql.partner}, ${sql.keyIdentifier}, ${sql.keyVersion}, ${sql.type}, ${sql.payload},
              'pending', 0, now(), ${sql.correlationId} ${sql.from}
    RETURNING id),
     notification_outbox AS (${outboxRowSql('partner-notification', 'id', sql.correlationId)} FROM notification)`;
}

const ENQUEUE_NOTIFICATION = prepared(
  `WITH ${notificationCtes({
    from: '',
    partner: '$1',
    keyIdentifier: '$2',
    keyVersion: '$3::integer',
    type: '$4',
    payload: '$5::jsonb',
    correlationId: '$6',
  })}
   SELECT id FROM notification`,
);

/**
 * Records a notification for the Device OEM partner that owns a key, inside the transaction of
 * the state change it reports, with its outbox row, in one statement; the worker delivers it.
 */
@Injectable()
export class PartnerNotificationsService {
  async enqueue(manager: EntityManager, request: NotificationRequest): Promise<string> {
    const [row] = await runPrepared<{ id: string }>(manager, ENQUEUE_NOTIFICATION, [
      request.partner,
      request.keyIdentifier,
      request.keyVersion,
      request.type,
      notificationPayload(request),
      request.correlationId ?? null,
    ]);
    outboxRowsWritten(manager);
    return row.id;
  }
}
