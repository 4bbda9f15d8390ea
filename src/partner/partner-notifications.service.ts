import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { writeOutboxRow } from '../telematics/command-outbox.service.js';
import { PartnerNotification, type PartnerNotificationType } from './partner-notification.entity.js';

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
 * the state change it reports, with its outbox row; the worker delivers it.
 */
@Injectable()
export class PartnerNotificationsService {
  async enqueue(manager: EntityManager, request: NotificationRequest): Promise<PartnerNotification> {
    const notification: PartnerNotification = manager.create(PartnerNotification, {
      id: randomUUID(),
      partner: request.partner,
      keyIdentifier: request.keyIdentifier,
      keyVersion: request.keyVersion,
      type: request.type,
      payload: {
        vehicleId: request.vehicleIdentifier,
        state: request.state,
        ...(request.revocationRelay ? { revocationRelay: request.revocationRelay } : {}),
      },
      status: 'pending',
      attempts: 0,
      nextAttemptAt: new Date(),
      correlationId: request.correlationId ?? null,
    });
    // jsonb columns are typed loosely by TypeORM; the row is complete.
    await manager.insert(PartnerNotification, notification as unknown as QueryDeepPartialEntity<PartnerNotification>);
    await writeOutboxRow(manager, {
      topic: 'partner-notification',
      deliveryId: notification.id,
      correlationId: request.correlationId ?? null,
    });
    return notification;
  }
}
