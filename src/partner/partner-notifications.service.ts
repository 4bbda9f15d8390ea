import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { outboxRowSql } from '../telematics/command-outbox.service.js';
import { outboxRowsWritten } from '../telematics/outbox-wake.js';
import type { PartnerNotificationType } from './partner-notification.entity.js';

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

/**
 * Records a notification for the Device OEM partner that owns a key, inside the transaction of
 * the state change it reports, with its outbox row, in one statement; the worker delivers it.
 */
@Injectable()
export class PartnerNotificationsService {
  async enqueue(manager: EntityManager, request: NotificationRequest): Promise<string> {
    const id = randomUUID();
    const payload = {
      vehicleId: request.vehicleIdentifier,
      state: request.state,
      ...(request.revocationRelay ? { revocationRelay: request.revocationRelay } : {}),
    };
    await manager.query(
      `WITH notification AS (
         INSERT INTO partner_notifications
           (id, partner, key_identifier, key_version, type, payload, status, attempts, next_attempt_at, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending', 0, now(), $7)
      RETURNING id),
       published AS (${outboxRowSql('partner-notification', 'id', '$7')} FROM notification)
       SELECT id FROM notification`,
      [
        id,
        request.partner,
        request.keyIdentifier,
        request.keyVersion,
        request.type,
        JSON.stringify(payload),
        request.correlationId ?? null,
      ],
    );
    outboxRowsWritten(manager);
    return id;
  }
}
