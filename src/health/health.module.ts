import { Module } from '@nestjs/common';
import { MetricsController } from '../metrics/metrics.controller.js';
import { HealthController } from './health.controller.js';

/** `/health` and `/metrics` on the admin listener. */
@Module({ controllers: [HealthController, MetricsController] })
export class OperationsModule {}
