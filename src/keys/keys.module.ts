import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { PartnerNotificationsModule } from '../partner/partner-notifications.module.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { KeyLifecycleService } from './key-lifecycle.service.js';
import { KeyRegistrationService } from './key-registration.service.js';
import { KeysController } from './keys.controller.js';
import { PartnerKeysController } from './partner-keys.controller.js';
import { VehicleEventsController } from './vehicle-events.controller.js';
import { VehicleEventsService } from './vehicle-events.service.js';

/** Key registration and lifecycle, without routes. */
@Module({
  imports: [AuditModule, TelematicsModule, PartnerNotificationsModule],
  providers: [KeyRegistrationService, KeyLifecycleService, VehicleEventsService],
  exports: [KeyRegistrationService, KeyLifecycleService, VehicleEventsService],
})
export class KeysCoreModule {}

/** Partner- and vehicle-facing key routes of the mTLS listener. */
@Module({ imports: [KeysCoreModule], controllers: [PartnerKeysController, VehicleEventsController] })
export class PartnerKeysModule {}

/** Operator key routes of the admin listener. */
@Module({ imports: [KeysCoreModule], controllers: [KeysController] })
export class KeysModule {}
