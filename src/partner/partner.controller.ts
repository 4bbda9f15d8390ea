import { Controller, Get, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { MtlsPrincipalGuard, RequirePrincipal, type MtlsRequest } from '../common/auth/mtls-principal.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';

export class HeartbeatResponse {
  @ApiProperty({ enum: ['ok'] }) status!: 'ok';
  @ApiProperty({ description: 'The partner the client certificate maps to.', example: 'device-oem' }) partner!: string;
  @ApiProperty({ description: 'SHA-256 fingerprint of the client certificate.' }) certificateFingerprint!: string;
  @ApiProperty({ format: 'date-time' }) serverTime!: string;
}

let formattedAt = 0;
let formatted = '';

/** The current time in ISO 8601, formatted once per millisecond however many heartbeats ask for it. */
function serverTime(): string {
  const now = Date.now();
  if (now !== formattedAt) {
    formattedAt = now;
    formatted = new Date(now).toISOString();
  }
  return formatted;
}

@ApiTags('partner (mTLS, Device OEM certificate)')
@ApiSecurity('mtls')
@UseGuards(MtlsPrincipalGuard)
@RequirePrincipal('partner')
@Controller('partner/v1')
export class PartnerController {
  @Get('heartbeat')
  @ApiOperation({
    summary: 'Check the partner connection',
    description: 'Returns the partner identity the server derived from the TLS client certificate.',
  })
  @ApiResponse({ status: 200, type: HeartbeatResponse, description: 'The identity the server sees.' })
  @ApiProblems(403)
  heartbeat(@Req() request: MtlsRequest): HeartbeatResponse {
    const principal = request.principal!;
    if (principal.kind !== 'partner') throw new Error('guard let a non-partner through');
    return {
      status: 'ok',
      partner: principal.partner,
      certificateFingerprint: principal.fingerprint,
      serverTime: serverTime(),
    };
  }
}
