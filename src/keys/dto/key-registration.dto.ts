import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBase64,
  IsIn,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateNested,
} from 'class-validator';

export class DeviceMetadataDto {
  @ApiPropertyOptional({ example: 'phone' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  deviceType?: string;

  @ApiPropertyOptional({ example: 'Phone 17' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  model?: string;

  @ApiPropertyOptional({ example: '26.1' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  osVersion?: string;
}

export class RegisterKeyDto {
  @ApiProperty({ description: '8-byte vehicle identifier, hex.', example: '0102030405060708' })
  @Matches(/^[0-9a-f]{16}$/, { message: 'vehicleId must be 16 lower-case hex digits' })
  vehicleId!: string;

  @ApiProperty({
    enum: ['owner', 'friend'],
    description: 'owner: under an open pairing session. friend: with the owner-signed attestation of PROTOCOL.md §7.',
  })
  @IsIn(['owner', 'friend'])
  role!: 'owner' | 'friend';

  @ApiPropertyOptional({
    description: 'friend only: the SignedFriendAttestation (DER, base64) the owner device signed (PROTOCOL.md §7).',
  })
  @IsOptional()
  @IsBase64()
  @MaxLength(2048)
  attestation?: string;

  @ApiProperty({
    description:
      'Base64 DER certificates: endpoint, Instance CA, Device OEM CA cross-signed by the Vehicle OEM root (PROTOCOL.md §2).',
    type: [String],
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(5)
  @IsBase64(undefined, { each: true })
  @MaxLength(8192, { each: true })
  certificateChain!: string[];

  @ApiPropertyOptional({ type: DeviceMetadataDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => DeviceMetadataDto)
  deviceMetadata?: DeviceMetadataDto;
}

export class KeyIdParamDto {
  @ApiProperty({ description: 'Key identifier (PROTOCOL.md §4.6), hex.', example: 'a1b2c3d4e5f60718' })
  @Matches(/^[0-9a-f]{12,16}$/, { message: 'keyId must be 12-16 lower-case hex digits' })
  keyId!: string;
}

export class KtsReceiptDto {
  @ApiProperty({ description: 'Unix milliseconds the receipt was issued.' }) issuedAtMs!: number;
  @ApiProperty({ description: 'ECDSA P-256 r‖s by the KTS key, base64.' }) signature!: string;
  @ApiProperty({ description: 'issuedAt(8) ‖ signature(64), base64: what the device hands the car.' }) encoded!: string;
}

export class PartnerKeyResponse {
  @ApiProperty({ example: 'a1b2c3d4e5f60718' }) keyId!: string;
  @ApiProperty({ example: '0102030405060708' }) vehicleId!: string;
  @ApiProperty({ enum: ['owner', 'friend'] }) role!: string;
  @ApiProperty({ enum: ['pending', 'active', 'suspended', 'terminating', 'terminated'] }) state!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class KeyRegistrationResponse extends PartnerKeyResponse {
  @ApiProperty({ type: KtsReceiptDto, description: 'Key tracking receipt (PROTOCOL.md §3.4).' })
  ktsReceipt!: KtsReceiptDto;
}
