import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { PairingController } from './pairing.controller.js';
import { PairingService } from './pairing.service.js';

/** Pairing logic without routes: the worker uses it to fill PAIRING_VERIFIER commands. */
@Module({ imports: [AuditModule, TelematicsModule], providers: [PairingService], exports: [PairingService] })
export class PairingCoreModule {}

@Module({ imports: [PairingCoreModule], controllers: [PairingController] })
export class PairingModule {}
