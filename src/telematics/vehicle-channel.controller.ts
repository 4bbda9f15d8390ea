import { Body, Controller, HttpCode, Post, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';
import { DataSource } from 'typeorm';
import { MtlsPrincipalGuard, RequirePrincipal, type MtlsRequest } from '../common/auth/mtls-principal.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { DeliveryLedgerService } from './delivery-ledger.service.js';

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export class VehicleAckDto {
  @ApiProperty({
    description:
      'Compact JWS (ES256, vehicle key) of `{ vehicleId, seq, keyListVersion, keyListDigest }` (PROTOCOL.md §8).',
  })
  @IsString()
  @MaxLength(4096)
  @Matches(COMPACT_JWS, { message: 'ack must be a compact JWS' })
  ack!: string;
}

export class VehicleAckResponse {
  @ApiProperty() seq!: number;
  @ApiProperty({ enum: ['acked'] }) status!: string;
}

@ApiTags('vehicle (mTLS, vehicle certificate)')
@ApiSecurity('mtls')
@UseGuards(MtlsPrincipalGuard)
@RequirePrincipal('vehicle')
@Controller('vehicle/v1')
export class VehicleChannelController {
  constructor(
    private readonly ledger: DeliveryLedgerService,
    private readonly dataSource: DataSource,
  ) {}

  // No Idempotency-Key: the signed ack carries its own identity (vehicle and seq), and a second
  // ack for the same command must be answered as a replay (409), never with a stored 200.
  @Post('acks')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Acknowledge a command',
    description:
      'For commands the car answered with 202: the signed ack arrives here later. An ack for a command already acknowledged is a replay (409); one about another vehicle is refused (403) and audited.',
  })
  @ApiResponse({ status: 200, type: VehicleAckResponse, description: 'Recorded.' })
  @ApiProblems(400, 403, 404, 409)
  async ack(@Req() request: MtlsRequest, @Body() body: VehicleAckDto): Promise<VehicleAckResponse> {
    const principal = request.principal!;
    if (principal.kind !== 'vehicle') throw new Error('guard let a non-vehicle through');
    const vehicle = await this.dataSource.getRepository(Vehicle).findOneByOrFail({ id: principal.vehicleId });
    const delivery = await this.ledger.recordAck(vehicle, body.ack, { duplicates: 'refuse' });
    return { seq: delivery.seq, status: 'acked' };
  }
}
