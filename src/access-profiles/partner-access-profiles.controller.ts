import { Controller, Get, Param, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { Matches } from 'class-validator';
import { DataSource } from 'typeorm';
import { MtlsPrincipalGuard, RequirePrincipal } from '../common/auth/mtls-principal.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';
import { ProblemException } from '../common/errors/problem.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { AccessProfilesService } from './access-profiles.service.js';
import { AccessProfileListResponse } from './dto/access-profile.dto.js';

export class VehicleIdParamDto {
  @ApiProperty({ description: '8-byte vehicle identifier, hex.', example: '0102030405060708' })
  @Matches(/^[0-9a-f]{16}$/, { message: 'vehicleId must be 16 lower-case hex digits' })
  vehicleId!: string;
}

@ApiTags('partner (mTLS, Device OEM certificate)')
@ApiSecurity('mtls')
@UseGuards(MtlsPrincipalGuard)
@RequirePrincipal('partner')
@Controller('partner/v1/vehicles')
export class PartnerAccessProfilesController {
  constructor(
    private readonly profiles: AccessProfilesService,
    private readonly dataSource: DataSource,
  ) {}

  @Get(':vehicleId/access-profiles')
  @ApiOperation({
    summary: 'Access profiles an owner may share with',
    description:
      "The automaker's active profiles (PROTOCOL.md §6) with their entitlements TLV, for the sharing screen.",
  })
  @ApiResponse({ status: 200, type: AccessProfileListResponse, description: 'The active profiles.' })
  @ApiProblems(400, 403, 404)
  async list(@Param() params: VehicleIdParamDto): Promise<AccessProfileListResponse> {
    const exists = await this.dataSource
      .getRepository(Vehicle)
      .exists({ where: { vehicleIdentifier: params.vehicleId } });
    if (!exists) throw new ProblemException('not-found', `vehicle ${params.vehicleId} does not exist`);
    return { items: await this.profiles.list(false) };
  }
}
