import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { ProblemException } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import { PartnerNotificationsService } from '../partner/partner-notifications.service.js';
import { DeliveryLedgerService } from '../telematics/delivery-ledger.service.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { DigitalKey } from './digital-key.entity.js';
import type { VehicleEventDto, VehicleEventResult } from './dto/vehicle-event.dto.js';
import { KeyLifecycleService } from './key-lifecycle.service.js';

/**
 * What cars report about their key lists: friend keys they enrolled offline (the server marks
 * them active) and keys the owner deleted at the car (revoked through the normal path). Each
 * report is idempotent: a repeat is a no-op.
 */
@Injectable()
export class VehicleEventsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly notifications: PartnerNotificationsService,
    private readonly lifecycle: KeyLifecycleService,
    private readonly ledger: DeliveryLedgerService,
  ) {}

  async record(vehicleId: string, events: VehicleEventDto[], context: RequestContext): Promise<VehicleEventResult[]> {
    const results: VehicleEventResult[] = [];
    for (const event of events) {
      switch (event.type) {
        case 'FRIEND_ENROLLED':
          results.push(await this.friendEnrolled(vehicleId, event, context));
          break;
        case 'KEY_DELETED_AT_CAR':
          results.push(await this.deletedAtCar(vehicleId, event, context));
          break;
        case 'KEY_REVOKED_BY_RELAY':
          results.push(await this.revokedByRelay(vehicleId, event, context));
          break;
      }
    }
    return results;
  }

  private friendEnrolled(
    vehicleId: string,
    event: VehicleEventDto,
    context: RequestContext,
  ): Promise<VehicleEventResult> {
    return this.dataSource.transaction(async (manager) => {
      const vehicle = await manager.findOneOrFail(Vehicle, {
        where: { id: vehicleId },
        lock: { mode: 'pessimistic_write' },
      });
      const key = await manager.findOne(DigitalKey, {
        where: { vehicleId, keyIdentifier: event.keyId },
        lock: { mode: 'pessimistic_write' },
      });
      const result = { keyId: event.keyId, type: event.type };
      if (!key) return { ...result, outcome: 'unknown-key' };
      if (key.role !== 'friend') return { ...result, outcome: 'refused', state: key.state };
      if (key.state !== 'pending') return { ...result, outcome: 'no-op', state: key.state };
      key.state = 'active';
      await manager.save(key);
      await this.notifications.enqueue(manager, {
        partner: key.partner,
        keyIdentifier: key.keyIdentifier,
        keyVersion: key.version,
        vehicleIdentifier: vehicle.vehicleIdentifier,
        state: 'active',
        type: 'FRIEND_KEY_ENROLLED',
        correlationId: context.correlationId,
      });
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'key.enrolled-at-car',
        subject: { type: 'key', id: key.keyIdentifier },
        details: { occurredAt: event.occurredAt, version: key.version },
        correlationId: context.correlationId,
      });
      return { ...result, outcome: 'applied', state: key.state };
    });
  }

  /**
   * The car applied a revocation the owner device relayed (§4.7, §5): it completes a
   * `terminating` key exactly as the SET_STATE ack would; whichever arrives second is a no-op.
   */
  private revokedByRelay(
    vehicleId: string,
    event: VehicleEventDto,
    context: RequestContext,
  ): Promise<VehicleEventResult> {
    return this.dataSource.transaction(async (manager) => {
      const vehicle = await manager.findOneOrFail(Vehicle, {
        where: { id: vehicleId },
        lock: { mode: 'pessimistic_write' },
      });
      const key = await manager.findOne(DigitalKey, { where: { vehicleId, keyIdentifier: event.keyId } });
      const result = { keyId: event.keyId, type: event.type };
      if (!key) return { ...result, outcome: 'unknown-key' };
      if (key.state === 'terminated') return { ...result, outcome: 'no-op', state: key.state };
      // The server never relays a key it has not revoked: a car claiming so is reported, not obeyed.
      if (key.state !== 'terminating') return { ...result, outcome: 'refused', state: key.state };
      await this.ledger.settleKey(manager, vehicle, key.keyIdentifier, context.correlationId, {
        from: 'terminating',
        to: 'terminated',
        source: { via: 'revocation-relay', ...(event.occurredAt ? { occurredAt: event.occurredAt } : {}) },
      });
      return { ...result, outcome: 'applied', state: 'terminated' };
    });
  }

  private async deletedAtCar(
    vehicleId: string,
    event: VehicleEventDto,
    context: RequestContext,
  ): Promise<VehicleEventResult> {
    const result = { keyId: event.keyId, type: event.type };
    try {
      const view = await this.lifecycle.apply(event.keyId, 'terminate', context, { vehicleId }, 'deleted at the car');
      return { ...result, outcome: 'applied', state: view.state };
    } catch (error) {
      if (error instanceof ProblemException && error.problemType === 'not-found')
        return { ...result, outcome: 'unknown-key' };
      if (error instanceof ProblemException && error.problemType === 'conflict') {
        return { ...result, outcome: 'no-op', state: String(error.extensions.currentState) };
      }
      throw error;
    }
  }
}
