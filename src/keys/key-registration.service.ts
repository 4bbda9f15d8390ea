import { Inject, Injectable } from '@nestjs/common';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { DataSource, In, IsNull, type EntityManager } from 'typeorm';
import { AccessProfile } from '../access-profiles/access-profile.entity.js';
import { AccessDenied, AuditService } from '../audit/audit.service.js';
import { ProblemException } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import type { AppConfig } from '../config/config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { ChainVerificationError, EndpointChainVerifier, type VerifiedEndpoint } from '../pki/endpoint-chain.js';
import { P256PublicKey, ecdsaSign } from '../protocol/crypto/p256.js';
import { ProtocolError } from '../protocol/errors.js';
import {
  decodeSignedFriendAttestation,
  verifyFriendAttestation,
  type SignedFriendAttestation,
} from '../protocol/friend-attestation.js';
import {
  ENTITLEMENT_PROFILES,
  decodeEntitlements,
  encodeEntitlements,
  hasRight,
  withShareWindow,
} from '../protocol/entitlements.js';
import { entitlementsTlv } from '../access-profiles/entitlements-record.js';
import { encodeKtsReceipt, ktsReceiptMessage } from '../protocol/kts-receipt.js';
import { CommandOutboxService } from '../telematics/command-outbox.service.js';
import { DigitalKey, digitalKeyColumns } from './digital-key.entity.js';
import { KeyLifecycleService, type LockedVehicle } from './key-lifecycle.service.js';
import type { KeyRegistrationResponse, PartnerKeyResponse, RegisterKeyDto } from './dto/key-registration.dto.js';
import { prepared, runPrepared } from '../database/prepared.js';

const LIVE_STATES = ['pending', 'active', 'suspended'] as const;
const OWNER_ENTITLEMENTS = encodeEntitlements(ENTITLEMENT_PROFILES.OWNER);

type KeyLookupRow = Pick<DigitalKey, 'keyIdentifier' | 'role' | 'state' | 'partner' | 'createdAt' | 'updatedAt'> & {
  vehicleIdentifier: string;
};

export function toPartnerKeyResponse(
  key: Pick<DigitalKey, 'keyIdentifier' | 'role' | 'state' | 'createdAt' | 'updatedAt'>,
  vehicleIdentifier: string,
): PartnerKeyResponse {
  return {
    keyId: key.keyIdentifier,
    vehicleId: vehicleIdentifier,
    role: key.role,
    state: key.state,
    createdAt: key.createdAt.toISOString(),
    updatedAt: key.updatedAt.toISOString(),
  };
}

function decodeChain(chain: string[]): Buffer[] {
  return chain.map((entry, index) => {
    const der = Buffer.from(entry, 'base64');
    if (der.length === 0 || der.toString('base64').replace(/=+$/, '') !== entry.replace(/=+$/, '')) {
      throw new ProblemException('validation-failed', `certificateChain[${index}] is not canonical base64`);
    }
    return der;
  });
}

/** Locks a vehicle by its identifier. */
const LOCK_VEHICLE = prepared(
  `SELECT id, vin, vehicle_identifier AS "vehicleIdentifier" FROM vehicles WHERE vehicle_identifier = $1 FOR UPDATE`,
);

/**
 * The open pairing session of a vehicle, the OWNER profile, and the vehicle's live owner key
 * (locked; its columns null when there is none). The caller holds the vehicle row lock.
 */
const OWNER_SESSION_PROFILE_AND_KEY = prepared(
  `SELECT (SELECT id FROM pairing_sessions
                  WHERE vehicle_id = $1 AND status = 'open' AND expires_at > now()
                  ORDER BY created_at DESC LIMIT 1) AS "sessionId",
          (SELECT id FROM access_profiles WHERE name = 'OWNER') AS "ownerProfileId",
          owner.*
     FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
          SELECT ${digitalKeyColumns()} FROM digital_keys
           WHERE vehicle_id = $1 AND role = 'owner' AND state IN ('pending', 'active', 'suspended')
           LIMIT 1
             FOR UPDATE) AS owner ON true`,
);

/** A pairing session that made its owner key. */
const COMPLETE_SESSION = prepared(
  `UPDATE pairing_sessions SET status = 'completed', owner_key_id = $2, updated_at = now() WHERE id = $1`,
);

/** A new key; nothing when its identifier is registered already. */
const INSERT_PENDING_KEY = prepared(
  `INSERT INTO digital_keys
         (key_identifier, vehicle_id, role, state, version, partner, endpoint_certificate_pem, access_profile_id,
          entitlements, owner_key_id, not_before, not_after)
       VALUES ($1, $2, $3, 'pending', 1, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (key_identifier) DO NOTHING
    RETURNING id, version, created_at AS "createdAt"`,
);

/** Locks the vehicle row (lock order everywhere: the vehicle first, then its keys). */
async function lockVehicle(manager: EntityManager, vehicleIdentifier: string): Promise<LockedVehicle> {
  const [vehicle] = await runPrepared<LockedVehicle>(manager, LOCK_VEHICLE, [vehicleIdentifier]);
  if (!vehicle) throw new ProblemException('not-found', `vehicle ${vehicleIdentifier} does not exist`);
  return vehicle;
}

/**
 * Registers ("tracks") owner keys for the Device OEM (PROTOCOL.md §3.4): verifies the endpoint
 * chain against our own root, requires an open pairing session, records the key as pending,
 * signs the KTS receipt and sends ADD_KEY to the car. A refusal records nothing but an audit row.
 */
@Injectable()
export class KeyRegistrationService {
  private readonly chains: EndpointChainVerifier;
  private readonly ktsKey: KeyObject;
  private readonly friendKeyLimit: number;

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly outbox: CommandOutboxService,
    private readonly lifecycle: KeyLifecycleService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.chains = new EndpointChainVerifier(config.pki.vehicleOemRootCertPem);
    this.ktsKey = createPrivateKey(config.pki.ktsKeyPem);
    this.friendKeyLimit = config.friendKeyLimit;
  }

  async register(partner: string, dto: RegisterKeyDto, context: RequestContext): Promise<KeyRegistrationResponse> {
    try {
      return dto.role === 'friend'
        ? await this.registerFriend(partner, dto, context)
        : await this.registerOwner(partner, dto, context);
    } catch (error) {
      if (error instanceof ProblemException && error.getStatus() < 500) {
        await this.dataSource
          .transaction((manager) =>
            this.audit.append(manager, {
              actor: context.actor,
              action: 'key.registration-refused',
              subject: { type: 'vehicle', id: dto.vehicleId },
              details: { reason: (error.getResponse() as { detail?: string }).detail ?? error.problemType },
              correlationId: context.correlationId,
            }),
          )
          .catch(() => undefined);
      }
      throw error;
    }
  }

  private verifyChain(dto: RegisterKeyDto): VerifiedEndpoint {
    let endpoint: VerifiedEndpoint;
    try {
      endpoint = this.chains.verify(decodeChain(dto.certificateChain));
    } catch (error) {
      if (error instanceof ChainVerificationError) {
        throw new ProblemException(
          'validation-failed',
          `certificate chain refused (${error.reason}): ${error.message}`,
        );
      }
      throw error;
    }
    if (endpoint.vehicleIdentifier !== dto.vehicleId) {
      throw new ProblemException('validation-failed', 'the endpoint certificate is for another vehicle');
    }
    if (endpoint.role !== null && endpoint.role !== dto.role) {
      throw new ProblemException('validation-failed', `the endpoint certificate is for a ${endpoint.role} key`);
    }
    return endpoint;
  }

  private async registerOwner(
    partner: string,
    dto: RegisterKeyDto,
    context: RequestContext,
  ): Promise<KeyRegistrationResponse> {
    const endpoint = this.verifyChain(dto);
    const issuedAtMs = Date.now();
    const key = await this.dataSource.transaction(async (manager) => {
      const vehicle = await lockVehicle(manager, dto.vehicleId);
      // After the lock, in their own statement, so they see what committed while it was awaited.
      const [{ sessionId, ownerProfileId, ...owner }] = await runPrepared<
        { sessionId: string | null; ownerProfileId: string | null } & (DigitalKey | { id: null })
      >(manager, OWNER_SESSION_PROFILE_AND_KEY, [vehicle.id]);
      const currentOwner = owner.id === null ? null : manager.create(DigitalKey, owner);
      if (!sessionId) {
        throw new ProblemException(
          'conflict',
          currentOwner
            ? 'the vehicle has an owner key; a new owner needs a new pairing session started by the operator'
            : 'the vehicle has no open pairing session',
        );
      }
      if (currentOwner) {
        // Owner device change: the old owner key goes through the normal revocation path.
        await this.lifecycle.terminateWithin(
          manager,
          currentOwner,
          vehicle,
          context,
          `owner device changed to ${endpoint.keyIdentifier} under pairing session ${sessionId}`,
        );
      }
      const { created, seq } = await this.recordPendingKey(manager, vehicle, endpoint, context, {
        role: 'owner',
        partner,
        accessProfileId: ownerProfileId,
        entitlements: OWNER_ENTITLEMENTS,
        ownerKeyId: null,
        notBefore: endpoint.notBefore,
        notAfter: endpoint.notAfter,
      });
      await runPrepared(manager, COMPLETE_SESSION, [sessionId, created.id]);
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'key.registered',
        subject: { type: 'key', id: created.keyIdentifier },
        details: {
          vehicleId: dto.vehicleId,
          role: 'owner',
          sessionId,
          seq,
          deviceMetadata: dto.deviceMetadata ? { ...dto.deviceMetadata } : undefined,
        },
        correlationId: context.correlationId,
      });
      return created;
    });
    return this.withReceipt(key, dto.vehicleId, endpoint, issuedAtMs);
  }

  /** Records a registered key as pending and sends ADD_KEY to the car, in the caller's transaction. */
  private async recordPendingKey(
    manager: EntityManager,
    vehicle: LockedVehicle,
    endpoint: VerifiedEndpoint,
    context: RequestContext,
    key: Pick<DigitalKey, 'role' | 'partner' | 'accessProfileId' | 'ownerKeyId' | 'notBefore' | 'notAfter'> & {
      entitlements: Buffer;
    },
  ): Promise<{ created: DigitalKey; seq: number }> {
    // One statement: a key already registered inserts nothing (and leaves the transaction usable).
    const [inserted] = await runPrepared<{ id: string; version: number; createdAt: Date }>(
      manager,
      INSERT_PENDING_KEY,
      [
        endpoint.keyIdentifier,
        vehicle.id,
        key.role,
        key.partner,
        endpoint.certificatePem,
        key.accessProfileId,
        key.entitlements,
        key.ownerKeyId,
        key.notBefore,
        key.notAfter,
      ],
    );
    if (!inserted) throw new ProblemException('conflict', `key ${endpoint.keyIdentifier} is already registered`);
    const created = manager.create(DigitalKey, {
      ...key,
      id: inserted.id,
      version: inserted.version,
      keyIdentifier: endpoint.keyIdentifier,
      vehicleId: vehicle.id,
      state: 'pending',
      endpointCertificatePem: endpoint.certificatePem,
      createdAt: inserted.createdAt,
      updatedAt: inserted.createdAt,
    });
    const add = await this.outbox.enqueue(manager, {
      vehicleId: vehicle.id,
      command: 'ADD_KEY',
      fields: {
        keyId: created.keyIdentifier,
        role: key.role,
        state: 'active',
        endpointPublicKey: endpoint.publicKeyPoint.toString('hex'),
        entitlements: key.entitlements.toString('hex'),
      },
      changesKeyList: true,
      correlationId: context.correlationId,
    });
    return { created, seq: add.seq };
  }

  /** Signs the KTS receipt (PROTOCOL.md §3.4) for a registered key. */
  private withReceipt(
    key: DigitalKey,
    vehicleIdentifier: string,
    endpoint: VerifiedEndpoint,
    issuedAtMs: number,
  ): KeyRegistrationResponse {
    const signature = ecdsaSign(
      this.ktsKey,
      ktsReceiptMessage({
        vehicleIdentifier: Buffer.from(vehicleIdentifier, 'hex'),
        keyIdentifier: Buffer.from(key.keyIdentifier, 'hex'),
        endpointCertificateDer: endpoint.certificateDer,
        issuedAtMs,
      }),
    );
    return {
      ...toPartnerKeyResponse(key, vehicleIdentifier),
      ktsReceipt: {
        issuedAtMs,
        signature: signature.toString('base64'),
        encoded: encodeKtsReceipt({ issuedAtMs, signature }).toString('base64'),
      },
    };
  }

  /**
   * A friend key (PROTOCOL.md §7 step 4): the owner device signed an attestation for this
   * endpoint with entitlements of one of the automaker's profiles, friends cannot re-share, and
   * the vehicle has room under the friend-key limit.
   */
  private async registerFriend(
    partner: string,
    dto: RegisterKeyDto,
    context: RequestContext,
  ): Promise<KeyRegistrationResponse> {
    const endpoint = this.verifyChain(dto);
    if (!dto.attestation)
      throw new ProblemException('validation-failed', 'a friend key needs the owner-signed attestation');
    let signed: SignedFriendAttestation;
    try {
      signed = decodeSignedFriendAttestation(Buffer.from(dto.attestation, 'base64'));
    } catch (error) {
      if (error instanceof ProtocolError)
        throw new ProblemException('validation-failed', `attestation refused: ${error.message}`);
      throw error;
    }
    const { attestation } = signed;
    if (attestation.vehicleIdentifier.toString('hex') !== dto.vehicleId) {
      throw new ProblemException('validation-failed', 'the attestation is for another vehicle');
    }
    if (!attestation.endpointPublicKey.equals(endpoint.publicKeyPoint)) {
      throw new ProblemException('validation-failed', 'the attestation names another endpoint key');
    }
    const now = new Date();
    if (attestation.notAfter <= now)
      throw new ProblemException('validation-failed', 'the attestation window has ended');
    const entitlements = decodeEntitlements(attestation.entitlements);
    if (hasRight(entitlements, 'share') || hasRight(entitlements, 'manage-keys')) {
      throw new ProblemException('validation-failed', 'friends cannot re-share or manage keys');
    }
    const issuedAtMs = Date.now();
    const key = await this.dataSource.transaction(async (manager) => {
      const vehicle = await lockVehicle(manager, dto.vehicleId);
      const owner = await manager.findOne(DigitalKey, {
        where: { vehicleId: vehicle.id, keyIdentifier: attestation.ownerKeyId.toString('hex'), role: 'owner' },
      });
      if (!owner || owner.state !== 'active') {
        throw new ProblemException('conflict', 'the attestation is not signed by an active owner key of this vehicle');
      }
      const ownerKey = P256PublicKey.fromKeyObject(new X509Certificate(owner.endpointCertificatePem).publicKey);
      if (!verifyFriendAttestation(signed, ownerKey)) {
        throw new ProblemException('validation-failed', 'the attestation signature does not verify with the owner key');
      }
      const profiles = await manager.find(AccessProfile, { where: { retiredAt: IsNull() } });
      const profile = profiles.find((candidate) =>
        entitlementsTlv(candidate.entitlements).equals(attestation.entitlements),
      );
      if (!profile)
        throw new ProblemException(
          'validation-failed',
          "the entitlements match none of the automaker's access profiles",
        );
      const friends = await manager.count(DigitalKey, {
        where: { vehicleId: vehicle.id, role: 'friend', state: In([...LIVE_STATES]) },
      });
      if (friends >= this.friendKeyLimit) {
        throw new ProblemException(
          'conflict',
          `the vehicle already has ${friends} friend keys (limit ${this.friendKeyLimit})`,
        );
      }
      const { created, seq } = await this.recordPendingKey(manager, vehicle, endpoint, context, {
        role: 'friend',
        partner,
        accessProfileId: profile.id,
        entitlements: encodeEntitlements(withShareWindow(entitlements, attestation.notBefore, attestation.notAfter)),
        ownerKeyId: owner.id,
        notBefore: attestation.notBefore,
        notAfter: attestation.notAfter,
      });
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'key.registered',
        subject: { type: 'key', id: created.keyIdentifier },
        details: {
          vehicleId: dto.vehicleId,
          role: 'friend',
          ownerKeyId: owner.keyIdentifier,
          accessProfile: profile.name,
          notBefore: attestation.notBefore.toISOString(),
          notAfter: attestation.notAfter.toISOString(),
          seq,
        },
        correlationId: context.correlationId,
      });
      return created;
    });
    return this.withReceipt(key, dto.vehicleId, endpoint, issuedAtMs);
  }

  get(partner: string, keyIdentifier: string): Promise<PartnerKeyResponse> {
    return this.audit.auditingDenials(async () => {
      // One statement with only the columns answered: findOne with a relation sends two (a
      // DISTINCT id query, then the join) and hydrates the certificate PEM and entitlements too.
      const [key] = await this.dataSource.query<Array<KeyLookupRow>>(
        `SELECT k.key_identifier AS "keyIdentifier", k.role, k.state, k.partner,
                k.created_at AS "createdAt", k.updated_at AS "updatedAt", v.vehicle_identifier AS "vehicleIdentifier"
           FROM digital_keys k JOIN vehicles v ON v.id = k.vehicle_id
          WHERE k.key_identifier = $1`,
        [keyIdentifier],
      );
      const absent = `key ${keyIdentifier} does not exist`;
      if (!key) throw new ProblemException('not-found', absent);
      // Another partner's key is reported as absent, never as forbidden; the attempt is audited.
      if (key.partner !== partner) {
        throw new AccessDenied('not-found', absent, {
          actor: { type: 'partner', id: partner },
          subject: { type: 'key', id: keyIdentifier },
          operation: 'read',
          reason: 'key of another partner',
        });
      }
      return toPartnerKeyResponse(key, key.vehicleIdentifier);
    });
  }
}
