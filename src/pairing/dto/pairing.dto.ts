import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { DeliveryResponse } from '../../vehicles/dto/vehicle.dto.js';

export class StartPairingDto {
  @ApiPropertyOptional({ description: 'How long the password stays usable, seconds.', minimum: 60, maximum: 86_400 })
  @IsOptional()
  @IsInt()
  @Min(60)
  @Max(86_400)
  ttlSeconds?: number;
}

export class ScryptCostDto {
  @ApiProperty({ example: 32768 }) N!: number;
  @ApiProperty({ example: 8 }) r!: number;
  @ApiProperty({ example: 1 }) p!: number;
}

export class PairingSessionResponse {
  @ApiProperty({ format: 'uuid' }) sessionId!: string;
  @ApiProperty({ example: 'WDD1234567A000001' }) vin!: string;
  @ApiProperty({
    description: 'The 8-digit pairing password. Shown once, never stored: give it to the owner now.',
    example: '04718293',
  })
  password!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @ApiProperty({ type: ScryptCostDto }) scrypt!: ScryptCostDto;
  @ApiProperty({ type: DeliveryResponse, description: 'The PAIRING_VERIFIER command on its way to the car.' })
  verifierDelivery!: DeliveryResponse;
}
