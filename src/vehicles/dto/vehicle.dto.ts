import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, IsUrl, Matches, Max, MaxLength, Min } from 'class-validator';

export const VIN_PATTERN = /^[A-HJ-NPR-Z0-9]{17}$/;

export class CreateVehicleDto {
  @ApiProperty({
    description: 'Vehicle identification number (ISO 3779, 17 characters, no I, O or Q).',
    example: 'WDD1234567A000001',
  })
  @IsString()
  @Matches(VIN_PATTERN, { message: 'vin must be 17 characters from A-Z (no I, O, Q) and 0-9' })
  vin!: string;

  @ApiProperty({
    description: "HTTPS URL of the car's telematics endpoint; signed commands are POSTed there.",
    example: 'https://telematics.example.com/vehicles/WDD1234567A000001/commands',
  })
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['https'], require_protocol: true, require_tld: false, require_valid_protocol: true })
  telematicsUrl!: string;

  @ApiPropertyOptional({
    description: "The car's long-term P-256 public key as SPKI PEM. Give this or `csr`.",
    example: '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...\n-----END PUBLIC KEY-----\n',
  })
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  publicKey?: string;

  @ApiPropertyOptional({ description: 'A PKCS#10 CSR (PEM) signed by the car key. Give this or `publicKey`.' })
  @IsOptional()
  @IsString()
  @MaxLength(8192)
  csr?: string;
}

export class ListQueryDto {
  @ApiPropertyOptional({ description: 'Page size.', default: 50, minimum: 1, maximum: 500 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: 'Cursor: the `next` value of the previous page.' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  after?: string;
}

export class VinParamDto {
  @ApiProperty({ example: 'WDD1234567A000001' })
  @Matches(VIN_PATTERN, { message: 'vin must be 17 characters from A-Z (no I, O, Q) and 0-9' })
  vin!: string;
}

export class VehicleResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'WDD1234567A000001' }) vin!: string;
  @ApiProperty({ description: '8-byte vehicle identifier (PROTOCOL.md §4.6), hex.', example: '0102030405060708' })
  vehicleIdentifier!: string;
  @ApiProperty() telematicsUrl!: string;
  @ApiProperty({ description: 'Vehicle certificate issued by the Vehicle OEM root (PEM).' }) certificatePem!: string;
  @ApiProperty({ description: 'Last command sequence number assigned.' }) lastSeq!: number;
  @ApiProperty({ description: 'Highest sequence number the car acknowledged.' }) ackedSeq!: number;
  @ApiProperty() keyListVersion!: number;
  @ApiProperty() ackedKeyListVersion!: number;
  @ApiProperty({ nullable: true, type: String }) ackedKeyListDigest!: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    format: 'date-time',
    description:
      "Since when the car's acked key-list digest has differed from the server's list (a full SYNC was sent once per key-list version); null when they agree.",
  })
  keyListMismatchSince!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) lastSeenAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class VehicleTrustAnchors {
  @ApiProperty({ description: 'Vehicle OEM root certificate (PEM): verifies device chains.' })
  vehicleOemRootCertificatePem!: string;
  @ApiProperty({ description: 'Public key the car pins to verify telematics commands (PEM).' })
  telematicsPublicKeyPem!: string;
  @ApiProperty({ description: 'Public key that verifies KTS receipts (PEM).' })
  ktsPublicKeyPem!: string;
}

export class ProvisionedVehicleResponse extends VehicleResponse {
  @ApiProperty({ type: VehicleTrustAnchors, description: 'What the car must pin.' })
  trust!: VehicleTrustAnchors;
}

export class VehicleListResponse {
  @ApiProperty({ type: [VehicleResponse] }) items!: VehicleResponse[];
  @ApiPropertyOptional({ description: 'Cursor for the next page; absent on the last page.' }) next?: string;
}

export class DeliveryResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() seq!: number;
  @ApiProperty({ enum: ['ADD_KEY', 'SET_STATE', 'SET_ENTITLEMENTS', 'PAIRING_VERIFIER', 'SYNC'] }) command!: string;
  @ApiProperty({ enum: ['pending', 'sent', 'acked', 'failed'] }) status!: string;
  @ApiProperty() attempts!: number;
  @ApiProperty({ format: 'date-time' }) nextAttemptAt!: string;
  @ApiProperty({ nullable: true, type: String }) lastError!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) sentAt!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) ackedAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class DeliveryListResponse {
  @ApiProperty({ type: [DeliveryResponse] }) items!: DeliveryResponse[];
}
