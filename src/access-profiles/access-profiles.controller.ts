import { Body, Controller, Get, Param, ParseBoolPipe, Post, Put, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorAuthGuard, RequireScopes } from '../common/auth/operator-auth.guard.js';
import { ApiIdempotencyKey, ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import { AccessProfilesService } from './access-profiles.service.js';
import {
  AccessProfileIdParamDto,
  AccessProfileListResponse,
  AccessProfileResponse,
  CreateAccessProfileDto,
  UpdateAccessProfileDto,
} from './dto/access-profile.dto.js';

@ApiTags('operator: access profiles')
@ApiBearerAuth('operator')
@UseGuards(OperatorAuthGuard)
@Controller('v1/access-profiles')
export class AccessProfilesController {
  constructor(private readonly profiles: AccessProfilesService) {}

  @Get()
  @RequireScopes('keys:read')
  @ApiOperation({ summary: 'List access profiles', description: 'Retired profiles only with `includeRetired=true`.' })
  @ApiQuery({ name: 'includeRetired', required: false, type: Boolean })
  @ApiResponse({ status: 200, type: AccessProfileListResponse, description: 'The profiles, by name.' })
  @ApiProblems(400, 401, 403)
  async list(
    @Query('includeRetired', new ParseBoolPipe({ optional: true })) includeRetired?: boolean,
  ): Promise<AccessProfileListResponse> {
    return { items: await this.profiles.list(includeRetired ?? false) };
  }

  @Get(':id')
  @RequireScopes('keys:read')
  @ApiOperation({ summary: 'Get an access profile' })
  @ApiResponse({ status: 200, type: AccessProfileResponse, description: 'The profile.' })
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: AccessProfileIdParamDto): Promise<AccessProfileResponse> {
    return this.profiles.get(params.id);
  }

  @Post()
  @RequireScopes('keys:write')
  @ApiOperation({ summary: 'Create an access profile', description: 'Accepts `Idempotency-Key`.' })
  @ApiResponse({ status: 201, type: AccessProfileResponse, description: 'Created.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 409, 422)
  create(@Body() body: CreateAccessProfileDto, @Context() context: RequestContext): Promise<AccessProfileResponse> {
    return this.profiles.create(body, context);
  }

  @Put(':id')
  @RequireScopes('keys:write')
  @ApiOperation({
    summary: 'Update or retire an access profile',
    description: 'Optimistic concurrency: send the `version` you read; a stale one gets 409.',
  })
  @ApiResponse({ status: 200, type: AccessProfileResponse, description: 'Updated.' })
  @ApiProblems(400, 401, 403, 404, 409)
  update(
    @Param() params: AccessProfileIdParamDto,
    @Body() body: UpdateAccessProfileDto,
    @Context() context: RequestContext,
  ): Promise<AccessProfileResponse> {
    return this.profiles.update(params.id, body, context);
  }
}
