import { Body, Controller, HttpCode, Post, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { MtlsPrincipalGuard, RequirePrincipal, type MtlsRequest } from '../common/auth/mtls-principal.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import { VehicleEventsDto, VehicleEventsResponse } from './dto/vehicle-event.dto.js';
import { VehicleEventsService } from './vehicle-events.service.js';

@ApiTags('vehicle (mTLS, vehicle certificate)')
@ApiSecurity('mtls')
@UseGuards(MtlsPrincipalGuard)
@RequirePrincipal('vehicle')
@Controller('vehicle/v1')
export class VehicleEventsController {
  constructor(private readonly events: VehicleEventsService) {}

  // No Idempotency-Key: each event is idempotent by itself (a repeat is a no-op and says so in
  // its outcome), so a car retries a batch as it is; a stored response would only hide that outcome.
  @Post('events')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Report key-list events',
    description:
      'Friend keys the car enrolled offline, keys the owner deleted at the car. Only keys of this car; repeats are no-ops.',
  })
  @ApiResponse({ status: 200, type: VehicleEventsResponse, description: 'What each event did.' })
  @ApiProblems(400, 403)
  async report(
    @Req() request: MtlsRequest,
    @Body() body: VehicleEventsDto,
    @Context() context: RequestContext,
  ): Promise<VehicleEventsResponse> {
    const principal = request.principal;
    if (principal?.kind !== 'vehicle') throw new Error('guard let a non-vehicle through');
    return { results: await this.events.record(principal.vehicleId, body.events, context) };
  }
}
