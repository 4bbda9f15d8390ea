import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { PartnerNotificationsModule } from '../partner/partner-notifications.module.js';
import { CommandOutboxService } from './command-outbox.service.js';
import { DeliveryLedgerService } from './delivery-ledger.service.js';
import { VehicleChannelController } from './vehicle-channel.controller.js';

/** Writing commands into the outbox and recording acks: used by the API and the worker. */
@Module({
  imports: [AuditModule, PartnerNotificationsModule],
  providers: [CommandOutboxService, DeliveryLedgerService],
  exports: [CommandOutboxService, DeliveryLedgerService],
})
export class TelematicsModule {}

/** The vehicle-facing routes of the mTLS listener. */
@Module({ imports: [TelematicsModule], controllers: [VehicleChannelController] })
export class VehicleChannelModule {}
