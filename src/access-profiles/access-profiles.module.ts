import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { AccessProfilesController } from './access-profiles.controller.js';
import { AccessProfilesService } from './access-profiles.service.js';

@Module({
  imports: [AuditModule],
  controllers: [AccessProfilesController],
  providers: [AccessProfilesService],
  exports: [AccessProfilesService],
})
export class AccessProfilesModule {}
