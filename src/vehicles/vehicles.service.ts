import { Inject, Injectable } from '@nestjs/common';
import { createPublicKey, randomBytes } from 'node:crypto';
import { DataSource, MoreThan, QueryFailedError } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { ProblemException, notFound } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { CommandOutboxService } from '../telematics/command-outbox.service.js';
import { Delivery } from '../telematics/delivery.entity.js';
import type {
  CreateVehicleDto,
  DeliveryResponse,
  ProvisionedVehicleResponse,
  VehicleListResponse,
  VehicleResponse,
} from './dto/vehicle.dto.js';
import { VehicleCertificateIssuer } from './vehicle-certificate-issuer.js';
import { Vehicle } from './vehicle.entity.js';

const UNIQUE_VIOLATION = '23505';

export function toVehicleResponse(vehicle: Vehicle): VehicleResponse {
  return {
    id: vehicle.id,
    vin: vehicle.vin,
    vehicleIdentifier: vehicle.vehicleIdentifier,
    telematicsUrl: vehicle.telematicsUrl,
    certificatePem: vehicle.certificatePem,
    lastSeq: vehicle.lastSeq,
    ackedSeq: vehicle.ackedSeq,
    keyListVersion: vehicle.keyListVersion,
    ackedKeyListVersion: vehicle.ackedKeyListVersion,
    ackedKeyListDigest: vehicle.ackedKeyListDigest,
    keyListMismatchSince: vehicle.keyListMismatchSince?.toISOString() ?? null,
    lastSeenAt: vehicle.lastSeenAt?.toISOString() ?? null,
    createdAt: vehicle.createdAt.toISOString(),
  };
}

export function toDeliveryResponse(delivery: Delivery): DeliveryResponse {
  return {
    id: delivery.id,
    seq: delivery.seq,
    command: delivery.command,
    status: delivery.status,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.nextAttemptAt.toISOString(),
    lastError: delivery.lastError,
    sentAt: delivery.sentAt?.toISOString() ?? null,
    ackedAt: delivery.ackedAt?.toISOString() ?? null,
    createdAt: delivery.createdAt.toISOString(),
  };
}

@Injectable()
export class VehiclesService {
  private readonly trust: ProvisionedVehicleResponse['trust'];

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly outbox: CommandOutboxService,
    private readonly issuer: VehicleCertificateIssuer,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const publicPem = (privatePem: string) =>
      createPublicKey(privatePem).export({ type: 'spki', format: 'pem' }).toString();
    this.trust = {
      vehicleOemRootCertificatePem: config.pki.vehicleOemRootCertPem,
      telematicsPublicKeyPem: publicPem(config.pki.telematicsKeyPem),
      ktsPublicKeyPem: publicPem(config.pki.ktsKeyPem),
    };
  }

  async provision(dto: CreateVehicleDto, context: RequestContext): Promise<ProvisionedVehicleResponse> {
    if (Boolean(dto.publicKey) === Boolean(dto.csr)) {
      throw new ProblemException('validation-failed', 'give exactly one of publicKey and csr');
    }
    const publicKey = await this.issuer.publicKeyFrom({ publicKeyPem: dto.publicKey, csrPem: dto.csr });
    const identifier = randomBytes(8);
    const issued = await this.issuer.issue(dto.vin, identifier, publicKey);
    try {
      const vehicle = await this.dataSource.transaction(async (manager) => {
        const created = await manager.save(
          manager.create(Vehicle, {
            vin: dto.vin,
            vehicleIdentifier: identifier.toString('hex'),
            telematicsUrl: dto.telematicsUrl,
            publicKeyPem: issued.publicKeyPem,
            certificatePem: issued.certificatePem,
            certificateFingerprint: issued.fingerprint,
          }),
        );
        await this.audit.append(manager, {
          actor: context.actor,
          action: 'vehicle.provisioned',
          subject: { type: 'vehicle', id: created.vin },
          details: { vehicleIdentifier: created.vehicleIdentifier, certificateFingerprint: issued.fingerprint },
          correlationId: context.correlationId,
        });
        return created;
      });
      return { ...toVehicleResponse(vehicle), trust: this.trust };
    } catch (error) {
      if (error instanceof QueryFailedError && (error.driverError as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new ProblemException('conflict', `a vehicle with VIN ${dto.vin} is already provisioned`);
      }
      throw error;
    }
  }

  async findByVin(vin: string): Promise<Vehicle> {
    const vehicle = await this.dataSource.getRepository(Vehicle).findOneBy({ vin });
    if (!vehicle) throw notFound(`vehicle ${vin}`);
    return vehicle;
  }

  async get(vin: string): Promise<VehicleResponse> {
    return toVehicleResponse(await this.findByVin(vin));
  }

  async list(limit = 50, after?: string): Promise<VehicleListResponse> {
    const vehicles = await this.dataSource.getRepository(Vehicle).find({
      where: after ? { vin: MoreThan(after) } : {},
      order: { vin: 'ASC' },
      take: limit + 1,
    });
    const page = vehicles.slice(0, limit);
    return {
      items: page.map(toVehicleResponse),
      ...(vehicles.length > limit ? { next: page[page.length - 1].vin } : {}),
    };
  }

  /** Asks the car to report its key list: a SYNC command through outbox → queue → telematics. */
  async requestSync(vin: string, context: RequestContext): Promise<DeliveryResponse> {
    const delivery = await this.dataSource.transaction(async (manager) => {
      const vehicle = await manager.findOne(Vehicle, { where: { vin }, select: { id: true, vin: true } });
      if (!vehicle) throw notFound(`vehicle ${vin}`);
      const queued = await this.outbox.enqueue(manager, {
        vehicleId: vehicle.id,
        command: 'SYNC',
        correlationId: context.correlationId,
      });
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'vehicle.sync-requested',
        subject: { type: 'vehicle', id: vin },
        details: { seq: queued.seq, deliveryId: queued.id },
        correlationId: context.correlationId,
      });
      return queued;
    });
    return toDeliveryResponse(delivery);
  }

  async deliveries(vin: string, limit = 100): Promise<DeliveryResponse[]> {
    const vehicle = await this.findByVin(vin);
    const deliveries = await this.dataSource
      .getRepository(Delivery)
      .find({ where: { vehicleId: vehicle.id }, order: { seq: 'DESC' }, take: limit });
    return deliveries.map(toDeliveryResponse);
  }
}
