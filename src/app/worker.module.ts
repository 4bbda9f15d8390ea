import { Module, type DynamicModule } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { DeliverySweeperService } from '../telematics/delivery-sweeper.service.js';
import type { DeliveryQueues } from '../telematics/delivery-queue.js';
import { PartnerNotificationWorker } from '../partner/partner-notification.worker.js';
import { OutboxRelayService } from '../telematics/outbox-relay.service.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { COMMAND_SECRETS, DELIVERY_QUEUES, WORKER_REDIS } from '../telematics/telematics.tokens.js';
import { PairingCoreModule } from '../pairing/pairing.module.js';
import { PairingService } from '../pairing/pairing.service.js';
import { VehicleCommandWorker } from '../telematics/vehicle-command.worker.js';
import { ProcessModule, type ProcessResources } from './app.modules.js';

export interface WorkerResources extends ProcessResources {
  workerRedis: Redis;
  queues: DeliveryQueues;
}

/** The worker process: outbox relay, vehicle-command worker, reconciliation sweeper. */
@Module({})
export class WorkerModule {
  static forRoot(resources: WorkerResources): DynamicModule {
    return {
      module: WorkerModule,
      imports: [ProcessModule.forRoot(resources), TelematicsModule, PairingCoreModule],
      providers: [
        { provide: WORKER_REDIS, useValue: resources.workerRedis },
        { provide: DELIVERY_QUEUES, useValue: resources.queues },
        { provide: COMMAND_SECRETS, useExisting: PairingService },
        OutboxRelayService,
        VehicleCommandWorker,
        PartnerNotificationWorker,
        DeliverySweeperService,
      ],
    };
  }
}
