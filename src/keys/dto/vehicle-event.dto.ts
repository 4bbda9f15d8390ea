import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsISO8601,
  IsOptional,
  Matches,
  ValidateNested,
} from 'class-validator';

export const VEHICLE_EVENT_TYPES = ['FRIEND_ENROLLED', 'KEY_DELETED_AT_CAR', 'KEY_REVOKED_BY_RELAY'] as const;
export type VehicleEventType = (typeof VEHICLE_EVENT_TYPES)[number];

export class VehicleEventDto {
  @ApiProperty({
    enum: VEHICLE_EVENT_TYPES,
    description:
      'FRIEND_ENROLLED: the car enrolled a friend key offline from its attestation (§7 step 5). KEY_DELETED_AT_CAR: the owner deleted a key in the car. KEY_REVOKED_BY_RELAY: the car revoked a key the owner device carried in its revocation relay (§4.7); it completes a `terminating` key like the SET_STATE ack, whichever arrives first.',
  })
  @IsIn(VEHICLE_EVENT_TYPES)
  type!: VehicleEventType;

  @ApiProperty({ example: 'a1b2c3d4e5f60718' })
  @Matches(/^[0-9a-f]{12,16}$/, { message: 'keyId must be 12-16 lower-case hex digits' })
  keyId!: string;

  @ApiPropertyOptional({ format: 'date-time' })
  @IsOptional()
  @IsISO8601()
  occurredAt?: string;
}

export class VehicleEventsDto {
  @ApiProperty({ type: [VehicleEventDto] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(50)
  @ValidateNested({ each: true })
  @Type(() => VehicleEventDto)
  events!: VehicleEventDto[];
}

export class VehicleEventResult {
  @ApiProperty() keyId!: string;
  @ApiProperty({ enum: VEHICLE_EVENT_TYPES }) type!: string;
  @ApiProperty({ enum: ['applied', 'no-op', 'unknown-key', 'refused'] }) outcome!: string;
  @ApiPropertyOptional() state?: string;
}

export class VehicleEventsResponse {
  @ApiProperty({ type: [VehicleEventResult] }) results!: VehicleEventResult[];
}
