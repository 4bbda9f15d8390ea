import { Body, Controller, Get, HttpCode, Param, Post, Req, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { MtlsPrincipalGuard, RequirePrincipal, type MtlsRequest } from '../common/auth/mtls-principal.guard.js';
import type { Principal } from '../common/auth/principal.js';
import { ApiIdempotencyKey, ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import {
  KeyIdParamDto,
  KeyRegistrationResponse,
  PartnerKeyResponse,
  RegisterKeyDto,
} from './dto/key-registration.dto.js';
import { KeyRegistrationService } from './key-registration.service.js';
import { KeyLifecycleRequestDto, PartnerTerminateDto } from './dto/key-lifecycle.dto.js';
import { KeyLifecycleService } from './key-lifecycle.service.js';
import type { KeyOperation } from './key-state-machine.js';

function partnerOf(request: MtlsRequest): string {
  const principal: Principal | undefined = request.principal;
  if (principal?.kind !== 'partner') throw new Error('guard let a non-partner through');
  return principal.partner;
}

@ApiTags('partner (mTLS, Device OEM certificate)')
@ApiSecurity('mtls')
@UseGuards(MtlsPrincipalGuard)
@RequirePrincipal('partner')
@Controller('partner/v1/keys')
export class PartnerKeysController {
  constructor(
    private readonly registration: KeyRegistrationService,
    private readonly lifecycle: KeyLifecycleService,
  ) {}

  @Post()
  @ApiOperation({
    summary: 'Register (track) a key',
    description:
      'Verifies the endpoint chain against the Vehicle OEM root, requires an open owner pairing session, records the key as pending, returns the KTS receipt and sends ADD_KEY to the car. A registration for a vehicle with an owner replaces that owner only under a new pairing session.',
  })
  @ApiResponse({
    status: 201,
    type: KeyRegistrationResponse,
    description: 'Registered; pending until the car confirms.',
  })
  @ApiIdempotencyKey()
  @ApiProblems(400, 403, 404, 409, 422)
  register(
    @Req() request: MtlsRequest,
    @Body() body: RegisterKeyDto,
    @Context() context: RequestContext,
  ): Promise<KeyRegistrationResponse> {
    return this.registration.register(partnerOf(request), body, context);
  }

  @Post(':keyId/suspend')
  @HttpCode(200)
  @ApiOperation({ summary: 'Suspend a key (lost device)', description: 'Only keys this partner registered.' })
  @ApiResponse({ status: 200, type: PartnerKeyResponse, description: 'Suspended.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 403, 404, 409, 422)
  suspend(
    @Req() request: MtlsRequest,
    @Param() params: KeyIdParamDto,
    @Body() body: KeyLifecycleRequestDto,
    @Context() context: RequestContext,
  ) {
    return this.lifecycleFor(request, params.keyId, 'suspend', context, body.reason);
  }

  @Post(':keyId/resume')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume a key (device found)', description: 'Only keys this partner registered.' })
  @ApiResponse({ status: 200, type: PartnerKeyResponse, description: 'Resumed.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 403, 404, 409, 422)
  resume(
    @Req() request: MtlsRequest,
    @Param() params: KeyIdParamDto,
    @Body() body: KeyLifecycleRequestDto,
    @Context() context: RequestContext,
  ) {
    return this.lifecycleFor(request, params.keyId, 'resume', context, body.reason);
  }

  @Post(':keyId/terminate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Terminate a key (deleted in the wallet)',
    description: 'Only keys this partner registered.',
  })
  @ApiResponse({ status: 200, type: PartnerKeyResponse, description: 'Terminating until the car acknowledges.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 403, 404, 409, 422)
  terminate(
    @Req() request: MtlsRequest,
    @Param() params: KeyIdParamDto,
    @Body() body: PartnerTerminateDto,
    @Context() context: RequestContext,
  ) {
    return this.lifecycleFor(request, params.keyId, 'terminate', context, body.reason, body.terminationAttestation);
  }

  private async lifecycleFor(
    request: MtlsRequest,
    keyId: string,
    operation: KeyOperation,
    context: RequestContext,
    reason?: string,
    terminationAttestation?: string,
  ): Promise<PartnerKeyResponse> {
    const view = await this.lifecycle.apply(
      keyId,
      operation,
      context,
      { partner: partnerOf(request) },
      reason,
      terminationAttestation,
    );
    return {
      keyId: view.keyId,
      vehicleId: view.vehicleId,
      role: view.role,
      state: view.state,
      createdAt: view.createdAt,
      updatedAt: view.updatedAt,
    };
  }

  @Get(':keyId')
  @ApiOperation({ summary: "Get a key's state", description: "Only the registering partner's keys are visible." })
  @ApiResponse({ status: 200, type: PartnerKeyResponse, description: 'The key.' })
  @ApiProblems(400, 403, 404)
  get(@Req() request: MtlsRequest, @Param() params: KeyIdParamDto): Promise<PartnerKeyResponse> {
    return this.registration.get(partnerOf(request), params.keyId);
  }
}
