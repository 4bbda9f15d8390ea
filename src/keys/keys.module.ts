import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { KeyRegistrationService } from './key-registration.service.js';
import { PartnerKeysController } from './partner-keys.controller.js';

/** Partner-facing key routes of the mTLS listener. */
@Module({
  imports: [AuditModule, TelematicsModule],
  controllers: [PartnerKeysController],
  providers: [KeyRegistrationService],
})
export class PartnerKeysModule {}
