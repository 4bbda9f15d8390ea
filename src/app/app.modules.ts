import { Global, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { AccessProfilesModule, PartnerAccessProfilesModule } from '../access-profiles/access-profiles.module.js';
import { AuditApiModule } from '../audit/audit.module.js';
import { MtlsPrincipalGuard } from '../common/auth/mtls-principal.guard.js';
import { OperatorAuthGuard } from '../common/auth/operator-auth.guard.js';
import { ProblemFilter } from '../common/errors/problem.filter.js';
import { RateLimiter } from '../common/rate-limit/rate-limiter.js';
import type { AppConfig } from '../config/config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { OperationsModule } from '../health/health.module.js';
import { AppMetrics } from '../metrics/metrics.js';
import { KeysModule, PartnerKeysModule } from '../keys/keys.module.js';
import { PairingModule } from '../pairing/pairing.module.js';
import { PartnerModule } from '../partner/partner.module.js';
import { VehicleChannelModule } from '../telematics/telematics.module.js';
import { PRODUCER_REDIS } from '../telematics/telematics.tokens.js';
import { VehiclesModule } from '../vehicles/vehicles.module.js';

/** Singletons of one process, shared by its Nest applications. */
export interface ProcessResources {
  config: AppConfig;
  dataSource: DataSource;
  redis?: Redis;
  metrics?: AppMetrics;
}

function sharedProviders(resources: ProcessResources): Provider[] {
  const providers: Provider[] = [
    { provide: APP_CONFIG, useValue: resources.config },
    { provide: DataSource, useValue: resources.dataSource },
    MtlsPrincipalGuard,
    OperatorAuthGuard,
    RateLimiter,
  ];
  if (resources.redis) providers.push({ provide: PRODUCER_REDIS, useValue: resources.redis });
  if (resources.metrics) providers.push({ provide: AppMetrics, useValue: resources.metrics });
  return providers;
}

@Global()
@Module({})
export class ProcessModule {
  static forRoot(resources: ProcessResources): DynamicModule {
    const providers = sharedProviders(resources);
    return { module: ProcessModule, providers, exports: providers };
  }
}

// No global interceptor: the idempotency interceptor is applied per route by ApiIdempotencyKey().
const HTTP_PROVIDERS: Provider[] = [{ provide: APP_FILTER, useClass: ProblemFilter }];

/** The mTLS listener (8443): partner (Device OEM) and vehicle routes. */
@Module({})
export class ApiModule {
  static forRoot(resources: ProcessResources): DynamicModule {
    return {
      module: ApiModule,
      imports: [
        ProcessModule.forRoot(resources),
        PartnerModule,
        PartnerKeysModule,
        PartnerAccessProfilesModule,
        VehicleChannelModule,
      ],
      providers: HTTP_PROVIDERS,
    };
  }
}

/** The admin listener (8080): operator API, health, metrics; docs and queue dashboard are mounted on it. */
@Module({})
export class AdminModule {
  static forRoot(resources: ProcessResources): DynamicModule {
    return {
      module: AdminModule,
      imports: [
        ProcessModule.forRoot(resources),
        VehiclesModule,
        PairingModule,
        KeysModule,
        AccessProfilesModule,
        AuditApiModule,
        OperationsModule,
      ],
      providers: HTTP_PROVIDERS,
    };
  }
}
