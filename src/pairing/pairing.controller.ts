import { Body, Controller, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorAuthGuard, RequireScopes } from '../common/auth/operator-auth.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';
import { NotReplayable } from '../common/idempotency/idempotency.interceptor.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import { VinParamDto } from '../vehicles/dto/vehicle.dto.js';
import { PairingSessionResponse, StartPairingDto } from './dto/pairing.dto.js';
import { PairingService } from './pairing.service.js';

@ApiTags('operator: vehicles')
@ApiBearerAuth('operator')
@UseGuards(OperatorAuthGuard)
@Controller('v1/vehicles')
export class PairingController {
  constructor(private readonly pairing: PairingService) {}

  @Post(':vin/owner-pairing')
  @RequireScopes('vehicles:write')
  @NotReplayable()
  @ApiOperation({
    summary: 'Start owner pairing',
    description:
      'After the owner proved ownership: creates a pairing session, returns the 8-digit password once (never stored), and sends the SPAKE2+ verifier to the car. A new session supersedes the open one. Takes no Idempotency-Key.',
  })
  @ApiResponse({ status: 201, type: PairingSessionResponse, description: 'Give the password to the owner.' })
  @ApiProblems(400, 401, 403, 404)
  start(
    @Param() params: VinParamDto,
    @Body() body: StartPairingDto,
    @Context() context: RequestContext,
  ): Promise<PairingSessionResponse> {
    return this.pairing.start(params.vin, body.ttlSeconds, context);
  }
}
