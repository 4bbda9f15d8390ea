import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { REVOCATION_RELAY_MAX_KEYS } from '../protocol/mailbox.js';
import { PartnerNotificationsService } from './partner-notifications.service.js';

/**
 * The revocation relay (PROTOCOL.md §4.7, §5): once a command fails to reach a car, the
 * revocations it has not acknowledged also ride in each active owner device's private mailbox,
 * so the offline car applies them at the owner's next tap. The server writes that mailbox through the Device OEM: a REVOCATION_RELAY
 * notification to the owner key, carrying the vehicle's key-list version and the (at most six,
 * oldest first) key ids still `terminating`. Each relay bumps the owner key's `version`, which
 * orders it with the key's other notifications, so the Device OEM keeps only the newest relay.
 */
@Injectable()
export class RevocationRelayService {
  constructor(private readonly notifications: PartnerNotificationsService) {}

  /** Rewrites the relay of every active owner key of the vehicle; the caller holds the vehicle row lock. */
  async refresh(
    manager: EntityManager,
    vehicle: { id: string; vehicleIdentifier: string },
    correlationId: string | null,
  ): Promise<void> {
    const revoked = await manager.query<Array<{ key_identifier: string }>>(
      `SELECT key_identifier FROM digital_keys
        WHERE vehicle_id = $1 AND state = 'terminating'
        ORDER BY updated_at ASC, key_identifier ASC
        LIMIT $2`,
      [vehicle.id, REVOCATION_RELAY_MAX_KEYS],
    );
    if (revoked.length === 0) return;
    const [{ version }] = await manager.query<Array<{ version: string }>>(
      'SELECT key_list_version::text AS version FROM vehicles WHERE id = $1',
      [vehicle.id],
    );
    const [owners] = await manager.query<[Array<{ key_identifier: string; partner: string; version: number }>, number]>(
      `UPDATE digital_keys SET version = version + 1
        WHERE vehicle_id = $1 AND role = 'owner' AND state = 'active'
    RETURNING key_identifier, partner, version`,
      [vehicle.id],
    );
    const revocationRelay = { keyListVersion: Number(version), keyIds: revoked.map((row) => row.key_identifier) };
    for (const owner of owners) {
      await this.notifications.enqueue(manager, {
        partner: owner.partner,
        keyIdentifier: owner.key_identifier,
        keyVersion: owner.version,
        vehicleIdentifier: vehicle.vehicleIdentifier,
        state: 'active',
        type: 'REVOCATION_RELAY',
        correlationId,
        revocationRelay,
      });
    }
  }
}
