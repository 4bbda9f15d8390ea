import { Module } from '@nestjs/common';
import { PartnerNotificationsService } from './partner-notifications.service.js';

@Module({ providers: [PartnerNotificationsService], exports: [PartnerNotificationsService] })
export class PartnerNotificationsModule {}
