import { Body, Controller, Get, Param, Post, Req, UseGuards } from '@nestjs/common';
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
  constructor(private readonly registration: KeyRegistrationService) {}

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

  @Get(':keyId')
  @ApiOperation({ summary: "Get a key's state", description: "Only the registering partner's keys are visible." })
  @ApiResponse({ status: 200, type: PartnerKeyResponse, description: 'The key.' })
  @ApiProblems(400, 403, 404)
  get(@Req() request: MtlsRequest, @Param() params: KeyIdParamDto): Promise<PartnerKeyResponse> {
    return this.registration.get(partnerOf(request), params.keyId);
  }
}
