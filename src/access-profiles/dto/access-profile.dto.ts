import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { ENTITLEMENT_RIGHTS, type EntitlementRight } from '../entitlements-record.js';

const UINT64_SECONDS_MAX = 253_402_300_799; // 9999-12-31, far inside 8 bytes

export class ValidityWindowDto {
  @ApiProperty({ description: 'Unix seconds.', example: 1_767_225_600 })
  @IsInt()
  @Min(0)
  @Max(UINT64_SECONDS_MAX)
  notBefore!: number;

  @ApiProperty({ description: 'Unix seconds.', example: 1_798_761_600 })
  @IsInt()
  @Min(0)
  @Max(UINT64_SECONDS_MAX)
  notAfter!: number;
}

export class TimeOfDayWindowDto {
  @ApiProperty({ description: 'Minutes after local midnight.', example: 420, minimum: 0, maximum: 1439 })
  @IsInt()
  @Min(0)
  @Max(1439)
  startMinute!: number;

  @ApiProperty({ description: 'Minutes after local midnight.', example: 1320, minimum: 0, maximum: 1439 })
  @IsInt()
  @Min(0)
  @Max(1439)
  endMinute!: number;

  @ApiProperty({ description: 'Weekday mask, bit0 = Monday … bit6 = Sunday.', example: 31, minimum: 1, maximum: 127 })
  @IsInt()
  @Min(1)
  @Max(127)
  weekdays!: number;
}

export class EntitlementsDto {
  @ApiProperty({ enum: ENTITLEMENT_RIGHTS, isArray: true, example: ['unlock', 'engine-start', 'drive'] })
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(ENTITLEMENT_RIGHTS.length)
  @IsIn(ENTITLEMENT_RIGHTS, { each: true })
  rights!: EntitlementRight[];

  @ApiPropertyOptional({ minimum: 1, maximum: 400, example: 105 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(400)
  maxSpeedKmh?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 100 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100)
  maxPowerPercent?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: 255 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(255)
  maxAudioVolume?: number;

  @ApiPropertyOptional({ type: ValidityWindowDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => ValidityWindowDto)
  validity?: ValidityWindowDto;

  @ApiPropertyOptional({ type: TimeOfDayWindowDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TimeOfDayWindowDto)
  timeOfDay?: TimeOfDayWindowDto;
}

export class CreateAccessProfileDto {
  @ApiProperty({ description: 'Upper snake case, unique.', example: 'WEEKDAY_VALET' })
  @IsString()
  @Matches(/^[A-Z][A-Z0-9_]{1,63}$/, { message: 'name must be upper snake case, 2-64 characters' })
  name!: string;

  @ApiProperty({ description: 'Shown to users when they choose a profile.', example: 'Unlock and drive on weekdays.' })
  @IsString()
  @MaxLength(500)
  description!: string;

  @ApiProperty({ type: EntitlementsDto })
  @ValidateNested()
  @Type(() => EntitlementsDto)
  entitlements!: EntitlementsDto;
}

export class UpdateAccessProfileDto {
  @ApiPropertyOptional({ example: 'Unlock and drive on weekdays, 7:00–22:00.' })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string;

  @ApiPropertyOptional({ type: EntitlementsDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => EntitlementsDto)
  entitlements?: EntitlementsDto;

  @ApiPropertyOptional({ description: 'true retires the profile: no new shares may use it.' })
  @IsOptional()
  @IsBoolean()
  retired?: boolean;

  @ApiProperty({ description: 'The version you read; a stale version gets 409.', example: 1 })
  @IsInt()
  @Min(1)
  version!: number;
}

export class AccessProfileIdParamDto {
  @ApiProperty({ format: 'uuid' })
  @IsUUID()
  id!: string;
}

export class AccessProfileResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'RESTRICTED_DRIVE' }) name!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ type: EntitlementsDto }) entitlements!: EntitlementsDto;
  @ApiProperty({
    description: 'Entitlements TLV of PROTOCOL.md §6 as hex (what cars and certificates carry).',
    example: '01010d02020069',
  })
  entitlementsTlv!: string;
  @ApiProperty({ description: 'A default of PROTOCOL.md §6.' }) builtin!: boolean;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) retiredAt!: string | null;
  @ApiProperty() version!: number;
}

export class AccessProfileListResponse {
  @ApiProperty({ type: [AccessProfileResponse] }) items!: AccessProfileResponse[];
}
