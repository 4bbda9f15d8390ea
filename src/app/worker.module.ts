import { Module, type DynamicModule } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { DeliverySweeperService } from '../telematics/delivery-sweeper.service.js';
import type { DeliveryQueue } from '../telematics/delivery-queue.js';
import { OutboxRelayService } from '../telematics/outbox-relay.service.js';
import { TelematicsModule } from '../telematics/telematics.module.js';
import { COMMAND_SECRETS, DELIVERY_QUEUE, WORKER_REDIS } from '../telematics/telematics.tokens.js';
import { PairingCoreModule } from '../pairing/pairing.module.js';
import { PairingService } from '../pairing/pairing.service.js';
import { VehicleCommandWorker } from '../telematics/vehicle-command.worker.js';
import { ProcessModule, type ProcessResources } from './app.modules.js';

export interface WorkerResources extends ProcessResources {
  workerRedis: Redis;
  queue: DeliveryQueue;
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
        { provide: DELIVERY_QUEUE, useValue: resources.queue },
        { provide: COMMAND_SECRETS, useExisting: PairingService },
        OutboxRelayService,
        VehicleCommandWorker,
        DeliverySweeperService,
      ],
    };
  }
}
