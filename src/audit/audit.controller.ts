import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorAuthGuard, RequireScopes } from '../common/auth/operator-auth.guard.js';
import { ApiProblems } from '../common/errors/api-problems.decorator.js';
import { AuditService } from './audit.service.js';
import { AuditListResponse, AuditQueryDto, AuditVerificationResponse } from './dto/audit.dto.js';

@ApiTags('operator: audit')
@ApiBearerAuth('operator')
@UseGuards(OperatorAuthGuard)
@Controller('v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireScopes('audit:read')
  @ApiOperation({ summary: 'Read the audit log', description: 'Oldest first, cursor-paginated by id.' })
  @ApiResponse({ status: 200, type: AuditListResponse, description: 'One page of audit events.' })
  @ApiProblems(400, 401, 403)
  async list(@Query() query: AuditQueryDto): Promise<AuditListResponse> {
    const limit = query.limit ?? 100;
    const rows = await this.audit.list({ ...query, limit });
    return {
      items: rows.map((row) => ({
        id: row.id,
        occurredAt: row.occurredAt.toISOString(),
        actor: { type: row.actorType, id: row.actorId },
        action: row.action,
        subject: { type: row.subjectType, id: row.subjectId },
        details: row.details,
        correlationId: row.correlationId,
        chain: row.chain,
        prevHash: row.prevHash,
        hash: row.hash,
      })),
      ...(rows.length === limit ? { next: rows[rows.length - 1].id } : {}),
    };
  }

  @Get('verify')
  @RequireScopes('audit:read')
  @ApiOperation({
    summary: 'Verify the audit hash chain',
    description: 'Recomputes every hash in order and reports the first row that does not match.',
  })
  @ApiResponse({ status: 200, type: AuditVerificationResponse, description: 'The verification result.' })
  @ApiProblems(401, 403)
  verify(): Promise<AuditVerificationResponse> {
    return this.audit.verify();
  }
}
