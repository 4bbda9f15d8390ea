import { Injectable } from '@nestjs/common';
import { X509Certificate } from 'node:crypto';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AccessProfile } from '../access-profiles/access-profile.entity.js';
import { entitlementsTlv } from '../access-profiles/entitlements-record.js';
import { AccessDenied, AuditService } from '../audit/audit.service.js';
import { P256PublicKey } from '../protocol/crypto/p256.js';
import { decodeEntitlements, encodeEntitlements, hasRight, withShareWindow } from '../protocol/entitlements.js';
import { ProtocolError } from '../protocol/errors.js';
import {
  decodeTerminationProof,
  verifyTerminationAttestation,
  type TerminationProof,
} from '../protocol/termination-attestation.js';
import { ProblemException } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import type { PartnerNotificationType } from '../partner/partner-notification.entity.js';
import {
  notificationCtes,
  notificationPayload,
  PartnerNotificationsService,
} from '../partner/partner-notifications.service.js';
import { CommandOutboxService, commandCtes } from '../telematics/command-outbox.service.js';
import { outboxRowsWritten } from '../telematics/outbox-wake.js';
import { Delivery } from '../telematics/delivery.entity.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { DigitalKey, digitalKeyColumns } from './digital-key.entity.js';
import type { KeyView, TimelineEntry, TimelineResponse } from './dto/key-lifecycle.dto.js';
import { carStateFor, transition, type KeyOperation } from './key-state-machine.js';
import { prepared, runPrepared } from '../database/prepared.js';

const AUDIT_ACTION: Record<KeyOperation, string> = {
  suspend: 'key.suspended',
  resume: 'key.resumed',
  terminate: 'key.terminating',
};

const NOTIFICATION: Record<KeyOperation, PartnerNotificationType> = {
  suspend: 'KEY_SUSPENDED',
  resume: 'KEY_RESUMED',
  terminate: 'KEY_TERMINATING',
};

export function toKeyView(key: DigitalKey, vehicle: Pick<Vehicle, 'vehicleIdentifier' | 'vin'>): KeyView {
  return {
    keyId: key.keyIdentifier,
    vehicleId: vehicle.vehicleIdentifier,
    vin: vehicle.vin,
    role: key.role,
    state: key.state,
    version: key.version,
    partner: key.partner,
    createdAt: key.createdAt.toISOString(),
    updatedAt: key.updatedAt.toISOString(),
  };
}

/** What a key change needs of its vehicle, whose row the transaction has locked. */
export type LockedVehicle = Pick<Vehicle, 'id' | 'vin' | 'vehicleIdentifier'>;

export interface LifecycleScope {
  /** A partner acts only on keys it registered; others are reported absent. */
  partner?: string;
  /** A car acts only on keys of its own key list. */
  vehicleId?: string;
}

/**
 * A key with every column of the entity and what a change needs of its vehicle, both locked in
 * one statement: the vehicle row first, then the key (row locks are taken in the order of
 * `FOR UPDATE OF`), the lock order everywhere. A key's vehicle never changes.
 */
const LOCK_KEY_AND_VEHICLE = prepared(
  `SELECT ${digitalKeyColumns('k')}, v.vin AS "vehicleVin", v.vehicle_identifier AS "vehicleIdentifier"
     FROM vehicles v JOIN digital_keys k ON k.vehicle_id = v.id
    WHERE k.key_identifier = $1
      FOR UPDATE OF v, k`,
);

/** An owner key's live friend keys, locked, oldest first; its vehicle row is already locked. */
const LOCK_FRIENDS = prepared(
  `SELECT ${digitalKeyColumns()} FROM digital_keys
    WHERE vehicle_id = $1 AND owner_key_id = $2 AND state IN ('pending', 'active', 'suspended')
    ORDER BY created_at, id
      FOR UPDATE`,
);

/** The key moves; SET_STATE for the car and the partner's notification, with their outbox rows. */
const CHANGE_KEY = prepared(
  `WITH changed AS (
         UPDATE digital_keys SET state = $1, version = version + 1, updated_at = now()
          WHERE id = $2
      RETURNING version, updated_at),
       ${commandCtes({ vehicleId: '$3', keyListDelta: '1', command: '$4', fields: '$5::jsonb', correlationId: '$6' })},
       ${notificationCtes({
         from: 'FROM changed',
         partner: '$7',
         keyIdentifier: '$8',
         keyVersion: 'changed.version',
         type: '$9',
         payload: '$10::jsonb',
         correlationId: '$6',
       })}
       SELECT changed.version, changed.updated_at AS "updatedAt", delivery.seq::text AS seq FROM changed, delivery`,
);

/**
 * Suspend, resume and terminate (PROTOCOL.md §5): every initiator goes through the same state
 * machine and the same delivery path. One transaction per request: lock the vehicle, then the
 * key; bump `version`; write SET_STATE for the car into the outbox; append the audit row.
 * Terminating an owner key terminates its friends' keys too, friends first.
 */
@Injectable()
export class KeyLifecycleService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly outbox: CommandOutboxService,
    private readonly notifications: PartnerNotificationsService,
  ) {}

  async apply(
    keyIdentifier: string,
    operation: KeyOperation,
    context: RequestContext,
    scope: LifecycleScope = {},
    reason?: string,
    evidence?: string,
  ): Promise<KeyView> {
    return this.audit.auditingDenials(() =>
      this.dataSource.transaction(async (manager) => {
        const { key, vehicle } = await this.lockKey(manager, keyIdentifier, scope, { operation, context });
        const attested =
          evidence === undefined ? undefined : this.checkTerminationProof(key, vehicle, evidence, context);
        if (operation === 'terminate' && key.role === 'owner') {
          const friends = await runPrepared<DigitalKey>(manager, LOCK_FRIENDS, [vehicle.id, key.id]);
          for (const friend of friends.map((row) => manager.create(DigitalKey, row)))
            await this.change(
              manager,
              friend,
              vehicle,
              'terminate',
              context,
              `owner key ${key.keyIdentifier} terminated`,
            );
        }
        await this.change(manager, key, vehicle, operation, context, reason, attested);
        return toKeyView(key, vehicle);
      }),
    );
  }

  /**
   * A device that deleted its key offline proves it with a termination attestation signed by
   * the endpoint key (PROTOCOL.md §5); it must verify against the key the server tracks.
   */
  private checkTerminationProof(
    key: DigitalKey,
    vehicle: LockedVehicle,
    evidence: string,
    context: RequestContext,
  ): Record<string, unknown> {
    let proof: TerminationProof;
    try {
      proof = decodeTerminationProof(Buffer.from(evidence, 'base64'));
    } catch (error) {
      if (error instanceof ProtocolError)
        throw new ProblemException('validation-failed', `terminationAttestation: ${error.message}`);
      throw error;
    }
    const endpointKey = P256PublicKey.fromKeyObject(new X509Certificate(key.endpointCertificatePem).publicKey);
    const valid = verifyTerminationAttestation(
      {
        vehicleIdentifier: Buffer.from(vehicle.vehicleIdentifier, 'hex'),
        keyIdentifier: Buffer.from(key.keyIdentifier, 'hex'),
        endpointPublicKey: Buffer.from(endpointKey.point),
        ...proof,
      },
      endpointKey,
    );
    if (!valid) {
      // Well-formed but signed by another endpoint (a friend's, say): not this caller's key to end.
      throw new AccessDenied(
        'forbidden',
        'the termination attestation is not signed by this key',
        {
          actor: context.actor,
          subject: { type: 'key', id: key.keyIdentifier },
          operation: 'terminate',
          reason: 'termination attestation not signed by the key',
        },
        context.correlationId,
      );
    }
    return {
      deviceAttested: true,
      attestationCounter: proof.counter.toString(),
      attestedAt: new Date(proof.unixMs).toISOString(),
    };
  }

  /**
   * Changes a friend key's access profile (PROTOCOL.md §6): the new entitlements reach the car
   * as SET_ENTITLEMENTS through the same delivery path, and the partner is told.
   */
  async changeAccessProfile(
    keyIdentifier: string,
    accessProfileId: string,
    context: RequestContext,
    reason?: string,
  ): Promise<KeyView> {
    return this.dataSource.transaction(async (manager) => {
      const { key, vehicle } = await this.lockKey(manager, keyIdentifier, {});
      if (key.role !== 'friend')
        throw new ProblemException('conflict', 'only friend keys have a changeable access profile');
      if (!['pending', 'active', 'suspended'].includes(key.state)) {
        throw new ProblemException('conflict', `key ${keyIdentifier} is ${key.state}`, { currentState: key.state });
      }
      const profile = await manager.findOneBy(AccessProfile, { id: accessProfileId });
      if (!profile || profile.retiredAt)
        throw new ProblemException('not-found', `access profile ${accessProfileId} does not exist`);
      const entitlements = decodeEntitlements(entitlementsTlv(profile.entitlements));
      if (hasRight(entitlements, 'share') || hasRight(entitlements, 'manage-keys')) {
        throw new ProblemException('validation-failed', 'friends cannot get share or manage rights');
      }
      // The share's window stays: a new profile changes what the friend may do, not until when.
      const tlv = encodeEntitlements(
        key.notBefore && key.notAfter ? withShareWindow(entitlements, key.notBefore, key.notAfter) : entitlements,
      );
      const from = key.accessProfileId;
      key.accessProfileId = profile.id;
      key.entitlements = tlv;
      await manager.save(key);
      const delivery = await this.outbox.enqueue(manager, {
        vehicleId: vehicle.id,
        command: 'SET_ENTITLEMENTS',
        fields: { keyId: key.keyIdentifier, entitlements: tlv.toString('hex') },
        changesKeyList: true,
        correlationId: context.correlationId,
      });
      await this.notifications.enqueue(manager, {
        partner: key.partner,
        keyIdentifier: key.keyIdentifier,
        keyVersion: key.version,
        vehicleIdentifier: vehicle.vehicleIdentifier,
        state: key.state,
        type: 'ACCESS_PROFILE_CHANGED',
        correlationId: context.correlationId,
      });
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'key.access-profile-changed',
        subject: { type: 'key', id: key.keyIdentifier },
        details: {
          from,
          to: profile.id,
          profile: profile.name,
          entitlements: tlv.toString('hex'),
          seq: delivery.seq,
          reason,
        },
        correlationId: context.correlationId,
      });
      return toKeyView(key, vehicle);
    });
  }

  /** Resale or theft: terminates every live key of the vehicle, friends before owners. */
  async terminateAll(vin: string, confirm: string, context: RequestContext, reason?: string): Promise<KeyView[]> {
    if (confirm !== vin) throw new ProblemException('validation-failed', 'confirm must repeat the VIN of the vehicle');
    return this.dataSource.transaction(async (manager) => {
      const vehicle = await manager.findOne(Vehicle, { where: { vin }, lock: { mode: 'pessimistic_write' } });
      if (!vehicle) throw new ProblemException('not-found', `vehicle ${vin} does not exist`);
      const keys = await manager.find(DigitalKey, {
        where: { vehicleId: vehicle.id, state: In(['pending', 'active', 'suspended']) },
        // 'friend' sorts before 'owner': friends are revoked first.
        order: { role: 'ASC', createdAt: 'ASC' },
        lock: { mode: 'pessimistic_write' },
      });
      for (const key of keys) await this.change(manager, key, vehicle, 'terminate', context, reason ?? 'terminate-all');
      return keys.map((key) => toKeyView(key, vehicle));
    });
  }

  /** Every key of the vehicle, owners first, then friends, oldest first. */
  async listForVehicle(vin: string): Promise<KeyView[]> {
    const vehicle = await this.dataSource.getRepository(Vehicle).findOneBy({ vin });
    if (!vehicle) throw new ProblemException('not-found', `vehicle ${vin} does not exist`);
    const keys = await this.dataSource.getRepository(DigitalKey).find({
      where: { vehicleId: vehicle.id },
      // 'owner' sorts after 'friend': DESC puts owners first.
      order: { role: 'DESC', createdAt: 'ASC' },
    });
    return keys.map((key) => toKeyView(key, vehicle));
  }

  async get(keyIdentifier: string): Promise<KeyView> {
    const key = await this.dataSource
      .getRepository(DigitalKey)
      .findOne({ where: { keyIdentifier }, relations: { vehicle: true } });
    if (!key?.vehicle) throw new ProblemException('not-found', `key ${keyIdentifier} does not exist`);
    return toKeyView(key, key.vehicle);
  }

  /** Every state change and every hop of a key, oldest first. */
  async timeline(keyIdentifier: string): Promise<TimelineResponse> {
    const key = await this.dataSource.getRepository(DigitalKey).findOneBy({ keyIdentifier });
    if (!key) throw new ProblemException('not-found', `key ${keyIdentifier} does not exist`);
    const audits = await this.audit.list({ subjectType: 'key', subjectId: keyIdentifier, limit: 1_000 });
    const deliveries = await this.dataSource
      .getRepository(Delivery)
      .createQueryBuilder('d')
      .where('d.vehicle_id = :vehicleId', { vehicleId: key.vehicleId })
      .andWhere(`d.fields ->> 'keyId' = :keyId`, { keyId: keyIdentifier })
      .orderBy('d.seq', 'ASC')
      .getMany();
    const entries: TimelineEntry[] = audits.map((row) => ({
      at: row.occurredAt.toISOString(),
      source: 'audit',
      event: row.action,
      details: { actor: `${row.actorType}:${row.actorId}`, ...row.details },
    }));
    for (const delivery of deliveries) {
      const base = {
        seq: delivery.seq,
        command: delivery.command,
        state: delivery.fields.state,
        deliveryId: delivery.id,
      };
      entries.push({
        at: delivery.createdAt.toISOString(),
        source: 'delivery',
        event: 'command.queued',
        details: base,
      });
      if (delivery.sentAt)
        entries.push({ at: delivery.sentAt.toISOString(), source: 'delivery', event: 'command.sent', details: base });
      if (delivery.ackedAt) {
        entries.push({
          at: delivery.ackedAt.toISOString(),
          source: 'delivery',
          event: 'command.acked-by-car',
          details: base,
        });
      } else if (delivery.status !== 'acked') {
        entries.push({
          at: delivery.updatedAt.toISOString(),
          source: 'delivery',
          event: `command.${delivery.status}`,
          details: {
            ...base,
            attempts: delivery.attempts,
            lastError: delivery.lastError,
            nextAttemptAt: delivery.nextAttemptAt.toISOString(),
          },
        });
      }
    }
    entries.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return { keyId: keyIdentifier, entries };
  }

  private async lockKey(
    manager: EntityManager,
    keyIdentifier: string,
    scope: LifecycleScope,
    request?: { operation: string; context: RequestContext },
  ) {
    const absent = `key ${keyIdentifier} does not exist`;
    const [locked] = await runPrepared<DigitalKey & { vehicleVin: string; vehicleIdentifier: string }>(
      manager,
      LOCK_KEY_AND_VEHICLE,
      [keyIdentifier],
    );
    if (!locked) throw new ProblemException('not-found', absent);
    const { vehicleVin, vehicleIdentifier, ...row } = locked;
    const vehicle: LockedVehicle = { id: row.vehicleId, vin: vehicleVin, vehicleIdentifier };
    const key = manager.create(DigitalKey, row);
    if (
      (scope.partner !== undefined && key.partner !== scope.partner) ||
      (scope.vehicleId !== undefined && key.vehicleId !== scope.vehicleId)
    ) {
      // Another tenant's key reads as absent (no existence oracle), and the attempt is audited.
      if (!request) throw new ProblemException('not-found', absent);
      throw new AccessDenied(
        'not-found',
        absent,
        {
          actor: request.context.actor,
          subject: { type: 'key', id: keyIdentifier },
          operation: request.operation,
          reason: scope.partner !== undefined ? 'key of another partner' : 'key of another vehicle',
        },
        request.context.correlationId,
      );
    }
    return { key, vehicle };
  }

  /** Terminates a key inside the caller's transaction (the vehicle row must already be locked). */
  terminateWithin(
    manager: EntityManager,
    key: DigitalKey,
    vehicle: LockedVehicle,
    context: RequestContext,
    reason: string,
  ) {
    return this.change(manager, key, vehicle, 'terminate', context, reason);
  }

  private async change(
    manager: EntityManager,
    key: DigitalKey,
    vehicle: LockedVehicle,
    operation: KeyOperation,
    context: RequestContext,
    reason?: string,
    evidence?: Record<string, unknown>,
  ): Promise<void> {
    const result = transition(key.state, operation);
    if (!result.ok) {
      throw new ProblemException('conflict', `key ${key.keyIdentifier} is ${result.current}; it cannot ${operation}`, {
        currentState: result.current,
      });
    }
    const from = key.state;
    // The key and vehicle rows are locked: one statement moves the key, queues SET_STATE for the
    // car and records the partner's notification, each with its outbox row.
    const [updated] = await runPrepared<{ version: number; updatedAt: Date; seq: string }>(manager, CHANGE_KEY, [
      result.to,
      key.id,
      vehicle.id,
      'SET_STATE',
      JSON.stringify({ keyId: key.keyIdentifier, state: carStateFor(result.to) }),
      context.correlationId ?? null,
      key.partner,
      key.keyIdentifier,
      NOTIFICATION[operation],
      notificationPayload({ vehicleIdentifier: vehicle.vehicleIdentifier, state: result.to }),
    ]);
    outboxRowsWritten(manager);
    key.state = result.to;
    key.version = updated.version;
    key.updatedAt = updated.updatedAt;
    await this.audit.append(manager, {
      actor: context.actor,
      action: AUDIT_ACTION[operation],
      subject: { type: 'key', id: key.keyIdentifier },
      details: {
        from,
        to: result.to,
        version: key.version,
        seq: Number(updated.seq),
        vin: vehicle.vin,
        reason,
        ...evidence,
      },
      correlationId: context.correlationId,
    });
  }
}
