import { Injectable, Optional } from '@nestjs/common';
import { AppMetrics } from '../metrics/metrics.js';
import { BoundedCache } from '../common/cache/bounded-cache.js';
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { DataSource, type EntityManager } from 'typeorm';
import { AccessDenied, AuditService } from '../audit/audit.service.js';
import type { PartnerNotificationType } from '../partner/partner-notification.entity.js';
import { notificationCtes, notificationPayload } from '../partner/partner-notifications.service.js';
import { ProblemException } from '../common/errors/problem.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { DELIVERY_STATUSES, Delivery } from './delivery.entity.js';
import { CommandOutboxService } from './command-outbox.service.js';
import { outboxRowsWritten } from './outbox-wake.js';
import { P256PublicKey } from '../protocol/crypto/p256.js';
import {
  ACK_JWS_TYPE,
  isTelematicsAck,
  keyListDigest,
  type SyncKeyEntry,
  type TelematicsAck,
} from '../protocol/telematics-messages.js';
import { RevocationRelayService } from '../partner/revocation-relay.service.js';
import { verifyCompactJws } from '../protocol/crypto/compact-jws.js';
import { prepared, runPrepared } from '../database/prepared.js';

/** Terminated keys a full SYNC names besides the live ones: the most recent (the car's deny-list keeps older ones). */
const SYNC_TERMINATED_KEYS = 50;

/** Who settled a key: the car's ack of a command, or the car's report of a relayed revocation. */
export type SettlementSource = { seq: number } | { via: 'revocation-relay'; occurredAt?: string };

/** Vehicle public keys kept parsed (a PEM parse costs about 0.1 ms); the least recently used go first. */
const MAX_CACHED_KEYS = 10_000;

/** What recording an ack needs of the car. */
export type AckingVehicle = Pick<Vehicle, 'id' | 'vin' | 'vehicleIdentifier' | 'publicKeyPem'>;

/** The columns of a delivery (of table alias `d`, if given) as `deliveryFromRow` maps them. */
function deliveryColumns(d = ''): string {
  const c = d ? `${d}.` : '';
  return `${c}id, ${c}vehicle_id AS "vehicleId", ${c}seq::text AS seq, ${c}command, ${c}fields,
  ${c}key_list_version::text AS "keyListVersion", ${c}status, ${c}attempts, ${c}next_attempt_at AS "nextAttemptAt",
  ${c}last_error AS "lastError", ${c}sweeps, ${c}sent_at AS "sentAt", ${c}acked_at AS "ackedAt",
  ${c}ack_key_list_digest AS "ackKeyListDigest", ${c}correlation_id AS "correlationId", ${c}created_at AS "createdAt",
  ${c}updated_at AS "updatedAt"`;
}
const DELIVERY_COLUMNS = deliveryColumns();

type OpenForJobRow = Omit<DeliveryRow, 'id'> & {
  id: string | null;
  vehicle: string;
  vin: string;
  vehicleIdentifier: string;
  telematicsUrl: string;
  publicKeyPem: string;
  targetSeq: string;
};

/** A car a command goes to, with what sending and acknowledging need of it. */
export type CommandTarget = AckingVehicle & Pick<Vehicle, 'telematicsUrl'>;

type DeliveryRow = Omit<Delivery, 'seq' | 'keyListVersion'> & { seq: string; keyListVersion: string };

function deliveryFromRow(row: DeliveryRow): Delivery {
  return Object.assign(new Delivery(), row, { seq: Number(row.seq), keyListVersion: Number(row.keyListVersion) });
}

const SETTLED_NOTIFICATION: Record<'active' | 'terminated', PartnerNotificationType> = {
  active: 'KEY_ACTIVATED',
  terminated: 'KEY_TERMINATED',
};

/**
 * An ack in one statement: the vehicle moves on (locked first), then the delivery is acked once.
 * One row with the vehicle's figures; the delivery's columns are null when it was acked already
 * (or is unknown). The delivery's update reads the vehicle's, so the vehicle row is locked first.
 */
const RECORD_ACK = prepared(
  `WITH vehicle AS (
         UPDATE vehicles
            SET acked_seq = GREATEST(acked_seq, $2),
                acked_key_list_version = GREATEST(acked_key_list_version, $3),
                acked_key_list_digest = CASE WHEN $2 >= acked_seq THEN $4 ELSE acked_key_list_digest END,
                last_seen_at = now()
          WHERE id = $1
      RETURNING id, last_seq::text AS "lastSeq", key_list_mismatch_since IS NOT NULL AS flagged),
       acked AS (
         UPDATE deliveries d SET status = 'acked', acked_at = $5, ack_key_list_digest = $4, last_error = NULL,
                updated_at = now()
           FROM vehicle
          WHERE d.vehicle_id = $1 AND d.seq = $2 AND d.status <> 'acked'
      RETURNING ${deliveryColumns('d')})
   SELECT vehicle."lastSeq" AS "vehicleLastSeq", vehicle.flagged AS "vehicleFlagged", acked.*
     FROM vehicle LEFT JOIN acked ON true`,
);

type RecordAckRow = { vehicleLastSeq: string; vehicleFlagged: boolean } & (
  DeliveryRow | { [column in keyof DeliveryRow]: null }
);

/** The key moves on and the partner's notification is recorded with it. */
const SETTLE_KEY_CTES = `settled AS (
         UPDATE digital_keys SET state = $4, version = version + 1, updated_at = now()
          WHERE vehicle_id = $1 AND key_identifier = $2 AND state = $3
      RETURNING partner, version),
       ${notificationCtes({
         from: 'FROM settled',
         partner: 'settled.partner',
         keyIdentifier: 'CAST($2 AS varchar)',
         keyVersion: 'settled.version',
         type: '$5',
         payload: '$6::jsonb',
         correlationId: '$7',
       })}`;
const SETTLE_KEY = prepared(`WITH ${SETTLE_KEY_CTES} SELECT partner, version FROM settled`);

/**
 * SETTLE_KEY, and the keys a car's digest covers as they are once it has moved: one row whether
 * or not the key moved (partner and version null when it did not).
 */
const SETTLE_KEY_LISTING_LIVE = prepared(
  `WITH ${SETTLE_KEY_CTES},
       live AS (
         SELECT key_identifier AS "keyId", state FROM digital_keys
          WHERE vehicle_id = $1 AND state IN ('active', 'suspended')
      UNION ALL
         SELECT CAST($2 AS varchar), CAST($4 AS varchar) FROM settled WHERE $4 IN ('active', 'suspended'))
   SELECT settled.partner, settled.version, (SELECT COALESCE(json_agg(live), '[]'::json) FROM live) AS live
     FROM (SELECT 1) AS one LEFT JOIN settled ON true`,
);

/** A key a car's digest covers. */
interface LiveKey {
  keyId: string;
  state: string;
}

/** The keys a car's digest covers. */
const LIVE_KEYS = prepared(
  `SELECT key_identifier AS "keyId", state FROM digital_keys
        WHERE vehicle_id = $1 AND state IN ('active', 'suspended')`,
);

/**
 * Open deliveries, written `NOT IN` the closed statuses rather than `IN ('pending', 'sent')`: that
 * form would match the predicate of the partial index `deliveries_open`, and a plan made while
 * the table was nearly empty (a prepared statement keeps its plan) could then scan every open
 * delivery to find one by id or by car. This way only the primary key and (vehicle_id, seq) fit.
 */
const CLOSED_STATUSES = DELIVERY_STATUSES.filter((status) => status !== 'pending' && status !== 'sent');
const OPEN = (alias: string) => `${alias}.status NOT IN (${CLOSED_STATUSES.map((status) => `'${status}'`).join(', ')})`;

/** A delivery job's car and its open deliveries up to the job's. */
const OPEN_FOR_JOB = prepared(
  `SELECT v.id AS vehicle, v.vin, v.vehicle_identifier AS "vehicleIdentifier", v.telematics_url AS "telematicsUrl",
              v.public_key_pem AS "publicKeyPem", t.seq::text AS "targetSeq", ${deliveryColumns('d')}
         FROM deliveries t
         JOIN vehicles v ON v.id = t.vehicle_id
         LEFT JOIN deliveries d ON d.vehicle_id = t.vehicle_id AND d.seq <= t.seq AND ${OPEN('d')}
        WHERE t.id = $1 AND ${OPEN('t')}
        ORDER BY d.seq`,
);

/** A car's open deliveries up to a seq, oldest first. */
const OPEN_UP_TO = prepared(
  `SELECT ${DELIVERY_COLUMNS} FROM deliveries
        WHERE vehicle_id = $1 AND seq <= $2 AND ${OPEN('deliveries')}
        ORDER BY deliveries.seq`,
);

/**
 * The record of what each car has received: acks are verified against the car's own key and
 * move deliveries to `acked`; the vehicle keeps the highest acked `seq` and key-list digest.
 */
@Injectable()
export class DeliveryLedgerService {
  private readonly vehicleKeys = new BoundedCache<string, KeyObject>(MAX_CACHED_KEYS);

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly outbox: CommandOutboxService,
    private readonly relay: RevocationRelayService,
    @Optional() private readonly metrics?: AppMetrics,
  ) {}

  private vehicleKey(vehicle: AckingVehicle): KeyObject {
    return this.vehicleKeys.getOrCreate(vehicle.id, () => createPublicKey(vehicle.publicKeyPem));
  }

  /**
   * Verifies a signed ack from `vehicle` and records it. Throws a 400/404 problem when it does not
   * hold, 403 (audited) when it is about another vehicle. From the vehicle API (`duplicates:
   * 'refuse'`), an ack for a command already acknowledged is a replay: 409, nothing changes.
   */
  recordAck(vehicle: AckingVehicle, ackJws: string, options: { duplicates: 'accept' | 'refuse' }): Promise<Delivery> {
    return this.audit.auditingDenials(() => this.recordVerifiedAck(vehicle, ackJws, options.duplicates));
  }

  private async recordVerifiedAck(
    vehicle: AckingVehicle,
    ackJws: string,
    duplicates: 'accept' | 'refuse',
  ): Promise<Delivery> {
    const otherVehicle = (claimed: unknown) =>
      new AccessDenied('forbidden', 'the ack is about another vehicle', {
        actor: { type: 'vehicle', id: vehicle.vin },
        subject: { type: 'vehicle', id: typeof claimed === 'string' ? claimed.slice(0, 64) : 'unknown' },
        operation: 'ack',
        reason: 'ack for another vehicle',
      });
    let payload: unknown;
    try {
      const verified = verifyCompactJws(ackJws, this.vehicleKey(vehicle));
      if (verified.header.typ !== undefined && verified.header.typ !== ACK_JWS_TYPE) {
        throw new Error('wrong typ');
      }
      payload = JSON.parse(verified.payload.toString('utf8'));
    } catch {
      // Another car's genuine ack relayed over this car's connection is a cross-vehicle attempt.
      const claimed = unverifiedVehicleId(ackJws);
      if (claimed !== undefined && claimed !== vehicle.vehicleIdentifier) throw otherVehicle(claimed);
      throw new ProblemException('validation-failed', 'the ack is not a valid JWS signed by this vehicle');
    }
    if (!isTelematicsAck(payload)) throw new ProblemException('validation-failed', 'the ack payload is malformed');
    if (payload.vehicleId !== vehicle.vehicleIdentifier) throw otherVehicle(payload.vehicleId);
    const ack = payload;
    return this.dataSource.transaction(async (manager) => {
      // Lock order everywhere: vehicle row first, then its keys, sessions and deliveries. One
      // statement moves both, and tells a first ack from a repeated one.
      const ackedAt = new Date();
      const [recorded] = await runPrepared<RecordAckRow>(manager, RECORD_ACK, [
        vehicle.id,
        ack.seq,
        ack.keyListVersion,
        ack.keyListDigest,
        ackedAt,
      ]);
      if (!recorded || recorded.id === null) {
        const [existing] = await manager.query<DeliveryRow[]>(
          `SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE vehicle_id = $1 AND seq = $2`,
          [vehicle.id, ack.seq],
        );
        if (!existing)
          throw new ProblemException('not-found', `no command with seq ${ack.seq} was sent to this vehicle`);
        if (duplicates === 'refuse') {
          throw new ProblemException('conflict', `the command with seq ${ack.seq} is already acknowledged`);
        }
        return deliveryFromRow(existing);
      }
      const { vehicleLastSeq, vehicleFlagged, ...row } = recorded;
      const delivery = deliveryFromRow(row);
      // The car has applied every command sent so far: its key list must match the server's.
      const reconciling = ack.seq === Number(vehicleLastSeq);
      const live = await this.applyAckEffects(manager, vehicle, delivery, reconciling);
      this.metrics?.commandAckLatency.observe(
        { command: delivery.command },
        (ackedAt.getTime() - delivery.createdAt.getTime()) / 1000,
      );
      if (reconciling) await this.reconcile(manager, vehicle, ack, delivery, vehicleFlagged, live);
      return delivery;
    });
  }

  /**
   * What the car's acknowledgement settles on the server side. With `listLive`, a key it settles
   * also returns the keys the car's digest covers once settled (else undefined).
   */
  private async applyAckEffects(
    manager: EntityManager,
    vehicle: AckingVehicle,
    delivery: Delivery,
    listLive: boolean,
  ): Promise<LiveKey[] | undefined> {
    switch (delivery.command) {
      case 'PAIRING_VERIFIER':
        // The car holds the verifier now: the server keeps nothing of it (PROTOCOL.md §3.1 step 4).
        await manager.query(
          `UPDATE pairing_sessions SET sealed_verifier = NULL, verifier_acked_at = now(), updated_at = now()
            WHERE verifier_delivery_id = $1`,
          [delivery.id],
        );
        break;
      case 'ADD_KEY':
        return this.settleKeyListingLive(manager, vehicle, delivery, listLive, { from: 'pending', to: 'active' });
      case 'SET_STATE':
        // The car dropped the endpoint and its Kpersistent: the revocation is complete, unless a
        // relayed revocation completed it first (then this ack is a no-op).
        if (delivery.fields.state === 'terminated') {
          return this.settleKeyListingLive(manager, vehicle, delivery, listLive, {
            from: 'terminating',
            to: 'terminated',
          });
        }
        return undefined;
      default:
        return undefined;
    }
  }

  /** settleKey for the command `delivery`; with `listLive`, in the same statement as listing the live keys. */
  private async settleKeyListingLive(
    manager: EntityManager,
    vehicle: AckingVehicle,
    delivery: Delivery,
    listLive: boolean,
    step: { from: 'pending'; to: 'active' } | { from: 'terminating'; to: 'terminated' },
  ): Promise<LiveKey[] | undefined> {
    const keyId = delivery.fields.keyId ?? '';
    const source = { seq: delivery.seq };
    if (!listLive) {
      await this.settleKey(manager, vehicle, keyId, delivery.correlationId, { ...step, source });
      return undefined;
    }
    const [row] = await runPrepared<{ partner: string | null; live: LiveKey[] }>(
      manager,
      SETTLE_KEY_LISTING_LIVE,
      this.settleValues(vehicle, keyId, delivery.correlationId, step),
    );
    if (row.partner !== null) await this.settled(manager, vehicle, keyId, delivery.correlationId, step.to, source);
    return row.live;
  }

  private settleValues(
    vehicle: Pick<Vehicle, 'id' | 'vehicleIdentifier'>,
    keyId: string,
    correlationId: string | null,
    step: { from: string; to: 'active' | 'terminated' },
  ): unknown[] {
    return [
      vehicle.id,
      keyId,
      step.from,
      step.to,
      SETTLED_NOTIFICATION[step.to],
      notificationPayload({ vehicleIdentifier: vehicle.vehicleIdentifier, state: step.to }),
      correlationId,
    ];
  }

  /** What follows a key the car settled: the relay is woken for its notification, and the audit row. */
  private async settled(
    manager: EntityManager,
    vehicle: Pick<Vehicle, 'vin'>,
    keyId: string,
    correlationId: string | null,
    to: 'active' | 'terminated',
    source: SettlementSource,
  ): Promise<void> {
    outboxRowsWritten(manager);
    await this.audit.append(manager, {
      actor: { type: 'vehicle', id: vehicle.vin },
      action: `key.${to === 'active' ? 'activated' : 'terminated'}`,
      subject: { type: 'key', id: keyId },
      details: { ...source },
      correlationId,
    });
  }

  /**
   * A key state the server holds only until the car confirms it: move on, tell the partner, audit.
   * Returns false when the key was not in `from` (already settled by the other path: a no-op).
   * The caller holds the vehicle row lock.
   */
  async settleKey(
    manager: EntityManager,
    vehicle: Pick<Vehicle, 'id' | 'vin' | 'vehicleIdentifier'>,
    keyId: string,
    correlationId: string | null,
    step: ({ from: 'pending'; to: 'active' } | { from: 'terminating'; to: 'terminated' }) & {
      source: SettlementSource;
    },
  ): Promise<boolean> {
    // One statement: the key moves on and the partner's notification is recorded with it.
    const rows = await runPrepared<{ partner: string; version: number }>(
      manager,
      SETTLE_KEY,
      this.settleValues(vehicle, keyId, correlationId, step),
    );
    if (!rows[0]) return false;
    await this.settled(manager, vehicle, keyId, correlationId, step.to, step.source);
    return true;
  }

  /**
   * A command did not reach the car: from now on its revocations also ride in the owners'
   * mailboxes (PROTOCOL.md §4.7). Sent once per key-list version, so an online car costs nothing
   * and a long outage does not repeat the same relay at every retry.
   */
  async relayIfUndelivered(vehicleId: string, correlationId: string | null): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      const [rows] = await manager.query<[Array<{ id: string; vehicleIdentifier: string }>, number]>(
        `UPDATE vehicles SET relayed_key_list_version = key_list_version
          WHERE id = $1 AND key_list_version > relayed_key_list_version
      RETURNING id, vehicle_identifier AS "vehicleIdentifier"`,
        [vehicleId],
      );
      if (rows[0]) await this.relay.refresh(manager, rows[0], correlationId);
    });
  }

  /**
   * Key-list reconciliation (PROTOCOL.md §8): once the car has acked the last command, its
   * digest must equal the server's over the active and suspended keys. On a mismatch the server
   * sends a full SYNC — once per key-list version, so a car that cannot converge is flagged
   * (`keyListMismatchSince`, audit, metric) instead of being sent SYNC after SYNC.
   */
  private async reconcile(
    manager: EntityManager,
    vehicle: AckingVehicle,
    ack: TelematicsAck,
    delivery: Delivery,
    flagged: boolean,
    listed?: LiveKey[],
  ): Promise<void> {
    // The common case is a match: compare on ids and states only, fetch what a SYNC needs on a mismatch.
    const live = listed ?? (await runPrepared<LiveKey>(manager, LIVE_KEYS, [vehicle.id]));
    const expected = keyListDigest(live);
    if (expected === ack.keyListDigest) {
      if (!flagged) return;
      await manager.query(
        `UPDATE vehicles SET key_list_mismatch_since = NULL WHERE id = $1 AND key_list_mismatch_since IS NOT NULL`,
        [vehicle.id],
      );
      return;
    }
    const [rows] = await manager.query<[Array<{ version: string; syncVersion: string | null }>, number]>(
      `UPDATE vehicles SET key_list_mismatch_since = COALESCE(key_list_mismatch_since, now())
        WHERE id = $1
    RETURNING key_list_version::text AS version, sync_key_list_version::text AS "syncVersion"`,
      [vehicle.id],
    );
    const { version, syncVersion } = rows[0];
    this.metrics?.keyListMismatches.inc({ answered: syncVersion === version ? 'flagged' : 'sync' });
    const details: Record<string, unknown> = { seq: ack.seq, carDigest: ack.keyListDigest, expectedDigest: expected };
    if (syncVersion === version) {
      // The SYNC of this version did not converge: leave it to the operator (the vehicle view shows it).
      await this.audit.append(manager, {
        actor: { type: 'vehicle', id: vehicle.vin },
        action: 'vehicle.key-list-diverged',
        subject: { type: 'vehicle', id: vehicle.vin },
        details,
        correlationId: delivery.correlationId,
      });
      return;
    }
    const keys = await manager.query<
      Array<{ keyId: string; state: string; role: string; pem: string; entitlements: Buffer | null }>
    >(
      `(SELECT key_identifier AS "keyId", state, role, endpoint_certificate_pem AS pem, entitlements
          FROM digital_keys WHERE vehicle_id = $1 AND state IN ('active', 'suspended', 'terminating'))
       UNION ALL
       (SELECT key_identifier, state, role, '', NULL FROM digital_keys
         WHERE vehicle_id = $1 AND state = 'terminated' ORDER BY updated_at DESC LIMIT $2)`,
      [vehicle.id, SYNC_TERMINATED_KEYS],
    );
    const sync = await this.outbox.enqueue(manager, {
      vehicleId: vehicle.id,
      command: 'SYNC',
      fields: { keys: keys.map(syncEntry) },
      correlationId: delivery.correlationId,
    });
    await manager.query(`UPDATE vehicles SET sync_key_list_version = $2 WHERE id = $1`, [vehicle.id, version]);
    await this.audit.append(manager, {
      actor: { type: 'vehicle', id: vehicle.vin },
      action: 'vehicle.key-list-mismatch',
      subject: { type: 'vehicle', id: vehicle.vin },
      details: { ...details, syncSeq: sync.seq },
      correlationId: delivery.correlationId,
    });
  }

  /**
   * What a delivery job needs, in one statement: the car of delivery `deliveryId` and its open
   * deliveries up to that one, oldest first. Undefined when that delivery is no longer open.
   */
  async openForJob(deliveryId: string): Promise<{ vehicle: CommandTarget; seq: number; open: Delivery[] } | undefined> {
    const rows = await runPrepared<OpenForJobRow>(this.dataSource, OPEN_FOR_JOB, [deliveryId]);
    const first = rows[0];
    if (!first) return undefined;
    return {
      vehicle: {
        id: first.vehicle,
        vin: first.vin,
        vehicleIdentifier: first.vehicleIdentifier,
        telematicsUrl: first.telematicsUrl,
        publicKeyPem: first.publicKeyPem,
      },
      seq: Number(first.targetSeq),
      open: rows.filter((row): row is typeof row & { id: string } => row.id !== null).map(deliveryFromRow),
    };
  }

  /** Open deliveries of a vehicle up to and including `seq`, oldest first: what must reach the car in order. */
  async openUpTo(vehicleId: string, seq: number): Promise<Delivery[]> {
    const rows = await runPrepared<DeliveryRow>(this.dataSource, OPEN_UP_TO, [vehicleId, seq]);
    return rows.map(deliveryFromRow);
  }

  async markSent(delivery: Delivery, ackDueAt: Date): Promise<void> {
    await this.dataSource
      .getRepository(Delivery)
      .createQueryBuilder()
      .update()
      .set({
        status: 'sent',
        sentAt: () => 'now()',
        attempts: () => 'attempts + 1',
        nextAttemptAt: ackDueAt,
        lastError: null,
      })
      .where('id = :id AND status = :status', { id: delivery.id, status: 'pending' })
      .execute();
  }

  async markAttemptFailed(delivery: Delivery, error: string, nextAttemptAt: Date): Promise<number> {
    const result = await this.dataSource.query<[Array<{ attempts: number }>, number]>(
      `UPDATE deliveries
          SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, updated_at = now()
        WHERE id = $1 AND status IN ('pending', 'sent')
    RETURNING attempts`,
      [delivery.id, error.slice(0, 1_000), nextAttemptAt],
    );
    return result[0][0]?.attempts ?? delivery.attempts + 1;
  }

  async markRejected(delivery: Delivery, detail: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE deliveries
          SET status = 'failed', attempts = attempts + 1, last_error = $2, updated_at = now()
        WHERE id = $1 AND status IN ('pending', 'sent')`,
      [delivery.id, detail.slice(0, 1_000)],
    );
  }
}

/** One key of a full SYNC: live keys carry what an ADD_KEY would, revoked ones only their id. */
function syncEntry(key: {
  keyId: string;
  state: string;
  role: string;
  pem: string;
  entitlements: Buffer | null;
}): SyncKeyEntry {
  if (key.state !== 'active' && key.state !== 'suspended') return { keyId: key.keyId, state: 'terminated' };
  return {
    keyId: key.keyId,
    state: key.state,
    role: key.role,
    endpointPublicKey: P256PublicKey.fromKeyObject(new X509Certificate(key.pem).publicKey).point.toString('hex'),
    ...(key.entitlements ? { entitlements: key.entitlements.toString('hex') } : {}),
  };
}

/** The `vehicleId` an ack claims, read without verifying it (only to tell a cross-vehicle attempt). */
function unverifiedVehicleId(jws: string): unknown {
  try {
    const claims = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as { vehicleId?: unknown }).vehicleId : undefined;
  } catch {
    return undefined;
  }
}
