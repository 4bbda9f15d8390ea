import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorAuthGuard, RequireScopes } from '../common/auth/operator-auth.guard.js';
import { ApiIdempotencyKey, ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import { VinParamDto } from '../vehicles/dto/vehicle.dto.js';
import { KeyIdParamDto } from './dto/key-registration.dto.js';
import {
  ChangeAccessProfileDto,
  KeyLifecycleRequestDto,
  KeyListResponse,
  KeyView,
  TerminateAllKeysDto,
  TimelineResponse,
} from './dto/key-lifecycle.dto.js';
import { KeyLifecycleService } from './key-lifecycle.service.js';

@ApiTags('operator: keys')
@ApiBearerAuth('operator')
@UseGuards(OperatorAuthGuard)
@Controller('v1')
export class KeysController {
  constructor(private readonly lifecycle: KeyLifecycleService) {}

  @Get('keys/:keyId')
  @RequireScopes('keys:read')
  @ApiOperation({ summary: 'Get a key', description: 'State, version, vehicle and partner.' })
  @ApiResponse({ status: 200, type: KeyView, description: 'The key.' })
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: KeyIdParamDto): Promise<KeyView> {
    return this.lifecycle.get(params.keyId);
  }

  @Get('keys/:keyId/timeline')
  @RequireScopes('keys:read')
  @ApiOperation({
    summary: "A key's timeline",
    description: 'Every state change (audit) and every hop of its commands to the car: queued, sent, acked, retries.',
  })
  @ApiResponse({ status: 200, type: TimelineResponse, description: 'Oldest first.' })
  @ApiProblems(400, 401, 403, 404)
  timeline(@Param() params: KeyIdParamDto): Promise<TimelineResponse> {
    return this.lifecycle.timeline(params.keyId);
  }

  @Post('keys/:keyId/suspend')
  @HttpCode(200)
  @RequireScopes('keys:write')
  @ApiOperation({ summary: 'Suspend a key', description: 'active → suspended; the car is told at once (SET_STATE).' })
  @ApiResponse({ status: 200, type: KeyView, description: 'Suspended.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 404, 409, 422)
  suspend(
    @Param() params: KeyIdParamDto,
    @Body() body: KeyLifecycleRequestDto,
    @Context() context: RequestContext,
  ): Promise<KeyView> {
    return this.lifecycle.apply(params.keyId, 'suspend', context, {}, body.reason);
  }

  @Post('keys/:keyId/resume')
  @HttpCode(200)
  @RequireScopes('keys:write')
  @ApiOperation({ summary: 'Resume a key', description: 'suspended → active.' })
  @ApiResponse({ status: 200, type: KeyView, description: 'Resumed.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 404, 409, 422)
  resume(
    @Param() params: KeyIdParamDto,
    @Body() body: KeyLifecycleRequestDto,
    @Context() context: RequestContext,
  ): Promise<KeyView> {
    return this.lifecycle.apply(params.keyId, 'resume', context, {}, body.reason);
  }

  @Post('keys/:keyId/terminate')
  @HttpCode(200)
  @RequireScopes('keys:write')
  @ApiOperation({
    summary: 'Terminate a key',
    description:
      "→ terminating until the car acknowledges, then terminated. An owner key takes its friends' keys with it.",
  })
  @ApiResponse({ status: 200, type: KeyView, description: 'Terminating.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 404, 409, 422)
  terminate(
    @Param() params: KeyIdParamDto,
    @Body() body: KeyLifecycleRequestDto,
    @Context() context: RequestContext,
  ): Promise<KeyView> {
    return this.lifecycle.apply(params.keyId, 'terminate', context, {}, body.reason);
  }

  @Put('keys/:keyId/access-profile')
  @RequireScopes('keys:write')
  @ApiOperation({
    summary: "Change a friend key's access profile",
    description:
      'The new entitlements reach the car as SET_ENTITLEMENTS; the Device OEM is notified (ACCESS_PROFILE_CHANGED).',
  })
  @ApiResponse({ status: 200, type: KeyView, description: 'Changed.' })
  @ApiProblems(400, 401, 403, 404, 409)
  changeAccessProfile(
    @Param() params: KeyIdParamDto,
    @Body() body: ChangeAccessProfileDto,
    @Context() context: RequestContext,
  ): Promise<KeyView> {
    return this.lifecycle.changeAccessProfile(params.keyId, body.accessProfileId, context, body.reason);
  }

  @Get('vehicles/:vin/keys')
  @RequireScopes('keys:read')
  @ApiOperation({
    summary: "List a vehicle's keys",
    description: 'Every key of the vehicle in any state, owners first, then friends, oldest first.',
  })
  @ApiResponse({ status: 200, type: KeyListResponse, description: "The vehicle's keys." })
  @ApiProblems(400, 401, 403, 404)
  async listForVehicle(@Param() params: VinParamDto): Promise<KeyListResponse> {
    return { items: await this.lifecycle.listForVehicle(params.vin) };
  }

  @Post('vehicles/:vin/keys/terminate-all')
  @HttpCode(200)
  @RequireScopes('keys:write')
  @ApiOperation({
    summary: 'Terminate every key of a vehicle',
    description: 'Resale or theft. `confirm` must repeat the VIN. Friends first, then owners.',
  })
  @ApiResponse({ status: 200, type: KeyListResponse, description: 'The keys now terminating.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 404, 409, 422)
  async terminateAll(
    @Param() params: VinParamDto,
    @Body() body: TerminateAllKeysDto,
    @Context() context: RequestContext,
  ): Promise<KeyListResponse> {
    return { items: await this.lifecycle.terminateAll(params.vin, body.confirm, context, body.reason) };
  }
}
