import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { SecretBox } from '../common/crypto/secret-box.js';
import { notFound } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import type { AppConfig } from '../config/config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import {
  deriveVerifierFromPassword,
  generatePairingPassword,
  generatePairingSalt,
} from '../protocol/spake2plus-password.js';
import type { PairingVerifier } from '../protocol/telematics-messages.js';
import { CommandOutboxService } from '../telematics/command-outbox.service.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { toDeliveryResponse } from '../vehicles/vehicles.service.js';
import type { PairingSessionResponse } from './dto/pairing.dto.js';
import { PairingSession } from './pairing-session.entity.js';

const SCRYPT_R = 8;
const SCRYPT_P = 1;

/**
 * Owner pairing, server side (PROTOCOL.md §3.1): a one-time password shown once, its SPAKE2+
 * verifier sealed at rest until the car acknowledges it, and a PAIRING_VERIFIER command to the
 * car. A new session supersedes any open one for the vehicle.
 */
@Injectable()
export class PairingService {
  private readonly box: SecretBox;

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly outbox: CommandOutboxService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.box = new SecretBox(config.pki.dataEncryptionKey);
  }

  async start(vin: string, ttlSeconds: number | undefined, context: RequestContext): Promise<PairingSessionResponse> {
    const vehicle = await this.dataSource.getRepository(Vehicle).findOne({ where: { vin }, select: { id: true } });
    if (!vehicle) throw notFound(`vehicle ${vin}`);
    const password = generatePairingPassword();
    const salt = generatePairingSalt();
    const cost = { N: this.config.pairing.scryptN, r: SCRYPT_R, p: SCRYPT_P };
    const verifier = await deriveVerifierFromPassword(password, salt, cost);
    const sessionId = randomUUID();
    const sealed = this.box.seal(
      Buffer.from(JSON.stringify({ w0: verifier.w0.toString('hex'), L: verifier.L.toString('hex') })),
      `pairing-session:${sessionId}`,
    );
    verifier.w1.fill(0);
    const expiresAt = new Date(Date.now() + (ttlSeconds ?? this.config.pairing.ttlSeconds) * 1000);

    const delivery = await this.dataSource.transaction(async (manager) => {
      await manager.query('SELECT id FROM vehicles WHERE id = $1 FOR UPDATE', [vehicle.id]);
      const [, supersededCount] = await manager.query<[unknown[], number]>(
        `UPDATE pairing_sessions SET status = 'superseded', sealed_verifier = NULL, updated_at = now()
          WHERE vehicle_id = $1 AND status = 'open'`,
        [vehicle.id],
      );
      await manager.insert(PairingSession, {
        id: sessionId,
        vehicleId: vehicle.id,
        status: 'open',
        salt,
        scryptN: cost.N,
        scryptR: cost.r,
        scryptP: cost.p,
        sealedVerifier: sealed,
        expiresAt,
        createdBy: `${context.actor.type}:${context.actor.id}`,
      });
      const queued = await this.outbox.enqueue(manager, {
        vehicleId: vehicle.id,
        command: 'PAIRING_VERIFIER',
        fields: { pairingSessionId: sessionId },
        correlationId: context.correlationId,
      });
      await manager.update(PairingSession, { id: sessionId }, { verifierDeliveryId: queued.id });
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'pairing.started',
        subject: { type: 'vehicle', id: vin },
        details: {
          sessionId,
          expiresAt: expiresAt.toISOString(),
          supersededSessions: supersededCount,
          seq: queued.seq,
        },
        correlationId: context.correlationId,
      });
      return queued;
    });
    return {
      sessionId,
      vin,
      password,
      expiresAt: expiresAt.toISOString(),
      scrypt: cost,
      verifierDelivery: toDeliveryResponse(delivery),
    };
  }

  /** The verifier for the worker to put in the signed command; undefined once erased or superseded. */
  async verifierFields(sessionId: string): Promise<PairingVerifier | undefined> {
    const session = await this.dataSource.getRepository(PairingSession).findOneBy({ id: sessionId });
    if (!session?.sealedVerifier || session.status === 'superseded') return undefined;
    const { w0, L } = JSON.parse(
      this.box.open(session.sealedVerifier, `pairing-session:${session.id}`).toString('utf8'),
    ) as {
      w0: string;
      L: string;
    };
    return {
      pairingSessionId: session.id,
      w0,
      L,
      salt: session.salt.toString('hex'),
      scryptN: session.scryptN,
      scryptR: session.scryptR,
      scryptP: session.scryptP,
    };
  }
}
