import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { AccessProfilesController } from './access-profiles.controller.js';
import { AccessProfilesService } from './access-profiles.service.js';
import { PartnerAccessProfilesController } from './partner-access-profiles.controller.js';

@Module({
  imports: [AuditModule],
  controllers: [AccessProfilesController],
  providers: [AccessProfilesService],
  exports: [AccessProfilesService],
})
export class AccessProfilesModule {}

/** The partner-facing profile list of the mTLS listener. */
@Module({ imports: [AccessProfilesModule], controllers: [PartnerAccessProfilesController] })
export class PartnerAccessProfilesModule {}
