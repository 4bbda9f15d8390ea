import { Module } from '@nestjs/common';
import { PartnerNotificationsService } from './partner-notifications.service.js';
import { RevocationRelayService } from './revocation-relay.service.js';

@Module({
  providers: [PartnerNotificationsService, RevocationRelayService],
  exports: [PartnerNotificationsService, RevocationRelayService],
})
export class PartnerNotificationsModule {}
