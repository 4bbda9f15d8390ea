import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { VehicleCertificateIssuer } from './vehicle-certificate-issuer.js';
import { VehiclesController } from './vehicles.controller.js';
import { VehiclesService } from './vehicles.service.js';

@Module({
  imports: [AuditModule, TelematicsModule],
  controllers: [VehiclesController],
  providers: [VehiclesService, VehicleCertificateIssuer],
  exports: [VehiclesService],
})
export class VehiclesModule {}
