import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorAuthGuard, RequireScopes } from '../common/auth/operator-auth.guard.js';
import { ApiIdempotencyKey, ApiProblems } from '../common/errors/api-problems.decorator.js';
import { Context, type RequestContext } from '../common/request/request-context.js';
import {
  CreateVehicleDto,
  DeliveryListResponse,
  DeliveryResponse,
  ListQueryDto,
  ProvisionedVehicleResponse,
  VehicleListResponse,
  VehicleResponse,
  VinParamDto,
} from './dto/vehicle.dto.js';
import { VehiclesService } from './vehicles.service.js';

@ApiTags('operator: vehicles')
@ApiBearerAuth('operator')
@UseGuards(OperatorAuthGuard)
@Controller('v1/vehicles')
export class VehiclesController {
  constructor(private readonly vehicles: VehiclesService) {}

  @Post()
  @RequireScopes('vehicles:write')
  @ApiOperation({
    summary: 'Provision a vehicle',
    description:
      'Registers a car, issues its certificate from the Vehicle OEM root and an 8-byte vehicle identifier. Accepts `Idempotency-Key`.',
  })
  @ApiResponse({ status: 201, type: ProvisionedVehicleResponse, description: 'Provisioned; the car must pin `trust`.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 409, 422)
  provision(@Body() body: CreateVehicleDto, @Context() context: RequestContext): Promise<ProvisionedVehicleResponse> {
    return this.vehicles.provision(body, context);
  }

  @Get()
  @RequireScopes('keys:read')
  @ApiOperation({ summary: 'List vehicles', description: 'Ordered by VIN, cursor-paginated.' })
  @ApiResponse({ status: 200, type: VehicleListResponse, description: 'One page of vehicles.' })
  @ApiProblems(400, 401, 403)
  list(@Query() query: ListQueryDto): Promise<VehicleListResponse> {
    return this.vehicles.list(query.limit, query.after);
  }

  @Get(':vin')
  @RequireScopes('keys:read')
  @ApiOperation({
    summary: 'Get a vehicle',
    description: 'Includes command sequence and key-list acknowledgement state.',
  })
  @ApiResponse({ status: 200, type: VehicleResponse, description: 'The vehicle.' })
  @ApiProblems(400, 401, 403, 404)
  get(@Param() params: VinParamDto): Promise<VehicleResponse> {
    return this.vehicles.get(params.vin);
  }

  @Post(':vin/sync')
  @HttpCode(202)
  @RequireScopes('vehicles:write')
  @ApiOperation({
    summary: 'Ask the car to sync its key list',
    description:
      'Queues a signed SYNC command (outbox → queue → telematics). The delivery is retried until the car acknowledges it. Accepts `Idempotency-Key`.',
  })
  @ApiResponse({ status: 202, type: DeliveryResponse, description: 'Queued; follow it in the deliveries.' })
  @ApiIdempotencyKey()
  @ApiProblems(400, 401, 403, 404, 409, 422)
  sync(@Param() params: VinParamDto, @Context() context: RequestContext): Promise<DeliveryResponse> {
    return this.vehicles.requestSync(params.vin, context);
  }

  @Get(':vin/deliveries')
  @RequireScopes('keys:read')
  @ApiOperation({
    summary: "List the car's command deliveries",
    description: 'Newest first, with attempts and ack times.',
  })
  @ApiResponse({ status: 200, type: DeliveryListResponse, description: 'Recent deliveries.' })
  @ApiProblems(400, 401, 403, 404)
  async deliveries(@Param() params: VinParamDto): Promise<DeliveryListResponse> {
    return { items: await this.vehicles.deliveries(params.vin) };
  }
}
