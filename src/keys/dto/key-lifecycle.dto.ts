import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBase64, IsOptional, IsString, IsUUID, Matches, MaxLength } from 'class-validator';
import { VIN_PATTERN } from '../../vehicles/dto/vehicle.dto.js';

export class KeyLifecycleRequestDto {
  @ApiPropertyOptional({ description: 'Why, recorded in the audit log.', example: 'device reported lost' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  reason?: string;
}

export class PartnerTerminateDto extends KeyLifecycleRequestDto {
  @ApiPropertyOptional({
    description:
      "The device's termination attestation (PROTOCOL.md §5), base64 of counter(8) ‖ unix-ms(8) ‖ r‖s(64) signed by the endpoint key, when the key was deleted on the device.",
  })
  @IsOptional()
  @IsBase64()
  @MaxLength(200)
  terminationAttestation?: string;
}

export class ChangeAccessProfileDto extends KeyLifecycleRequestDto {
  @ApiProperty({ format: 'uuid', description: 'An active access profile without share or manage rights.' })
  @IsUUID()
  accessProfileId!: string;
}

export class TerminateAllKeysDto extends KeyLifecycleRequestDto {
  @ApiProperty({
    description: 'The VIN again, to confirm an irreversible fleet-level action.',
    example: 'WDD1234567A000001',
  })
  @Matches(VIN_PATTERN, { message: 'confirm must repeat the VIN' })
  confirm!: string;
}

export class KeyView {
  @ApiProperty({ example: 'a1b2c3d4e5f60718' }) keyId!: string;
  @ApiProperty({ example: '0102030405060708' }) vehicleId!: string;
  @ApiProperty({ example: 'WDD1234567A000001' }) vin!: string;
  @ApiProperty({ enum: ['owner', 'friend'] }) role!: string;
  @ApiProperty({ enum: ['pending', 'active', 'suspended', 'terminating', 'terminated'] }) state!: string;
  @ApiProperty({ description: 'Bumped by every transition.' }) version!: number;
  @ApiProperty({ description: 'Device OEM partner that registered it.' }) partner!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class KeyListResponse {
  @ApiProperty({ type: [KeyView] }) items!: KeyView[];
}

export class TimelineEntry {
  @ApiProperty({ format: 'date-time' }) at!: string;
  @ApiProperty({ enum: ['audit', 'delivery'] }) source!: string;
  @ApiProperty({ example: 'key.suspended' }) event!: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) details!: Record<string, unknown>;
}

export class TimelineResponse {
  @ApiProperty() keyId!: string;
  @ApiProperty({ type: [TimelineEntry] }) entries!: TimelineEntry[];
}
