import { Module } from '@nestjs/common';
import { PartnerController } from './partner.controller.js';

@Module({ controllers: [PartnerController] })
export class PartnerModule {}
