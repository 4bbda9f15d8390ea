import { Injectable } from '@nestjs/common';
import { DataSource, QueryFailedError } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { ProblemException, notFound } from '../common/errors/problem.js';
import type { RequestContext } from '../common/request/request-context.js';
import { AccessProfile } from './access-profile.entity.js';
import type {
  AccessProfileResponse,
  CreateAccessProfileDto,
  EntitlementsDto,
  UpdateAccessProfileDto,
} from './dto/access-profile.dto.js';
import { entitlementsTlv, type EntitlementsRecord } from './entitlements-record.js';

const UNIQUE_VIOLATION = '23505';

function toRecord(dto: EntitlementsDto): EntitlementsRecord {
  const record: EntitlementsRecord = { rights: [...dto.rights] };
  if (dto.maxSpeedKmh !== undefined) record.maxSpeedKmh = dto.maxSpeedKmh;
  if (dto.maxPowerPercent !== undefined) record.maxPowerPercent = dto.maxPowerPercent;
  if (dto.maxAudioVolume !== undefined) record.maxAudioVolume = dto.maxAudioVolume;
  if (dto.validity) {
    if (dto.validity.notAfter <= dto.validity.notBefore) {
      throw new ProblemException('validation-failed', 'entitlements.validity.notAfter must be after notBefore');
    }
    record.validity = { notBefore: dto.validity.notBefore, notAfter: dto.validity.notAfter };
  }
  if (dto.timeOfDay) {
    record.timeOfDay = { ...dto.timeOfDay };
  }
  return record;
}

export function toAccessProfileResponse(profile: AccessProfile): AccessProfileResponse {
  return {
    id: profile.id,
    name: profile.name,
    description: profile.description,
    entitlements: profile.entitlements,
    entitlementsTlv: entitlementsTlv(profile.entitlements).toString('hex'),
    builtin: profile.builtin,
    retiredAt: profile.retiredAt?.toISOString() ?? null,
    version: profile.version,
  };
}

/** Automaker-defined access levels (PROTOCOL.md §6). Profiles are retired, never deleted: keys reference them. */
@Injectable()
export class AccessProfilesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
  ) {}

  async list(includeRetired: boolean): Promise<AccessProfileResponse[]> {
    const query = this.dataSource.getRepository(AccessProfile).createQueryBuilder('p').orderBy('p.name', 'ASC');
    if (!includeRetired) query.where('p.retired_at IS NULL');
    return (await query.getMany()).map(toAccessProfileResponse);
  }

  async get(id: string): Promise<AccessProfileResponse> {
    const profile = await this.dataSource.getRepository(AccessProfile).findOneBy({ id });
    if (!profile) throw notFound(`access profile ${id}`);
    return toAccessProfileResponse(profile);
  }

  async create(dto: CreateAccessProfileDto, context: RequestContext): Promise<AccessProfileResponse> {
    const entitlements = toRecord(dto.entitlements);
    try {
      const profile = await this.dataSource.transaction(async (manager) => {
        const created = await manager.save(
          manager.create(AccessProfile, { name: dto.name, description: dto.description, entitlements, builtin: false }),
        );
        await this.audit.append(manager, {
          actor: context.actor,
          action: 'access-profile.created',
          subject: { type: 'access-profile', id: created.id },
          details: { name: created.name, entitlements },
          correlationId: context.correlationId,
        });
        return created;
      });
      return toAccessProfileResponse(profile);
    } catch (error) {
      if (error instanceof QueryFailedError && (error.driverError as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new ProblemException('conflict', `an access profile named ${dto.name} exists already`);
      }
      throw error;
    }
  }

  async update(id: string, dto: UpdateAccessProfileDto, context: RequestContext): Promise<AccessProfileResponse> {
    const profile = await this.dataSource.transaction(async (manager) => {
      const current = await manager.findOne(AccessProfile, { where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!current) throw notFound(`access profile ${id}`);
      if (current.version !== dto.version) {
        throw new ProblemException('conflict', `the profile is at version ${current.version}, not ${dto.version}`, {
          currentVersion: current.version,
        });
      }
      const changes: Record<string, unknown> = {};
      if (dto.description !== undefined) current.description = changes.description = dto.description;
      if (dto.entitlements !== undefined) current.entitlements = changes.entitlements = toRecord(dto.entitlements);
      if (dto.retired !== undefined) {
        current.retiredAt = dto.retired ? (current.retiredAt ?? new Date()) : null;
        changes.retired = dto.retired;
      }
      const saved = await manager.save(current);
      await this.audit.append(manager, {
        actor: context.actor,
        action: 'access-profile.updated',
        subject: { type: 'access-profile', id },
        details: { name: saved.name, version: saved.version, changes },
        correlationId: context.correlationId,
      });
      return saved;
    });
    return toAccessProfileResponse(profile);
  }
}
