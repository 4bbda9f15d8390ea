import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

export class AuditQueryDto {
  @ApiPropertyOptional({ default: 100, minimum: 1, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;

  @ApiPropertyOptional({ description: 'Cursor: rows with an id greater than this.' })
  @IsOptional()
  @Matches(/^\d{1,19}$/)
  after?: string;

  @ApiPropertyOptional({ example: 'vehicle' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  subjectType?: string;

  @ApiPropertyOptional({ example: 'WDD1234567A000001' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  subjectId?: string;
}

export class AuditActorDto {
  @ApiProperty({ enum: ['operator', 'partner', 'vehicle', 'system'] }) type!: string;
  @ApiProperty() id!: string;
}

export class AuditSubjectDto {
  @ApiProperty({ example: 'vehicle' }) type!: string;
  @ApiProperty({ example: 'WDD1234567A000001' }) id!: string;
}

export class AuditEventResponse {
  @ApiProperty({ example: '42' }) id!: string;
  @ApiProperty({ format: 'date-time' }) occurredAt!: string;
  @ApiProperty({ type: AuditActorDto }) actor!: AuditActorDto;
  @ApiProperty({ example: 'vehicle.provisioned' }) action!: string;
  @ApiProperty({ type: AuditSubjectDto }) subject!: AuditSubjectDto;
  @ApiProperty({ type: 'object', additionalProperties: true }) details!: Record<string, unknown>;
  @ApiProperty({ nullable: true, type: String }) correlationId!: string | null;
  @ApiProperty({ description: 'The chain the row extends (one per transaction).' }) chain!: number;
  @ApiProperty({ description: 'Hash of the previous row of the same chain (hex).' }) prevHash!: string;
  @ApiProperty({ description: 'SHA-256(prevHash ‖ canonical JSON of this row), hex.' }) hash!: string;
}

export class AuditListResponse {
  @ApiProperty({ type: [AuditEventResponse] }) items!: AuditEventResponse[];
  @ApiPropertyOptional() next?: string;
}

export class AuditBrokenRowDto {
  @ApiProperty() id!: string;
  @ApiProperty({
    enum: ['hash-mismatch', 'broken-link', 'head-mismatch'],
    description: '`head-mismatch`: the chain does not end at its recorded head (rows cut off or rewritten at its end).',
  })
  reason!: string;
}

export class AuditVerificationResponse {
  @ApiProperty() ok!: boolean;
  @ApiProperty({ description: 'Rows verified before the first broken one (or all).' }) checked!: number;
  @ApiPropertyOptional({ type: AuditBrokenRowDto }) firstBroken?: AuditBrokenRowDto;
  @ApiProperty({
    description: 'How many parallel chains hold rows (each transaction extends one that no other holds).',
  })
  chains!: number;
  @ApiProperty({
    description:
      "SHA-256 over the chains' last hashes in chain order (while verifying: the broken chain's last good hash).",
  })
  lastHash!: string;
}
