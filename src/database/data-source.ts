import 'reflect-metadata';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { AccessProfile } from '../access-profiles/access-profile.entity.js';
import { AuditChainHead } from '../audit/audit-chain-head.entity.js';
import { AuditEvent } from '../audit/audit-event.entity.js';
import { IdempotencyRecord } from '../common/idempotency/idempotency-record.entity.js';
import { DigitalKey } from '../keys/digital-key.entity.js';
import { PairingSession } from '../pairing/pairing-session.entity.js';
import { PartnerNotification } from '../partner/partner-notification.entity.js';
import { Delivery } from '../telematics/delivery.entity.js';
import { OutboxMessage } from '../telematics/outbox-message.entity.js';
import { Vehicle } from '../vehicles/vehicle.entity.js';
import { MIGRATIONS } from '../../migrations/index.js';

/** Every entity, listed explicitly so the same list works from sources (tests) and from dist/. */
export const ENTITIES = [
  Vehicle,
  AccessProfile,
  DigitalKey,
  OutboxMessage,
  Delivery,
  IdempotencyRecord,
  AuditEvent,
  AuditChainHead,
  PairingSession,
  PartnerNotification,
];

export const DEFAULT_DATABASE_URL = 'postgres://postgres@localhost:5432/digital_key';

export interface DataSourceTuning {
  poolSize?: number;
  applicationName?: string;
}

/** One options object shared by Nest, the worker, tests and the migration CLI. */
export function dataSourceOptions(databaseUrl: string, tuning: DataSourceTuning = {}): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    // gen_random_uuid() is built into PostgreSQL ≥ 13: no extension to install.
    uuidExtension: 'pgcrypto',
    installExtensions: false,
    synchronize: false,
    migrationsRun: false,
    logging: false,
    extra: {
      max: tuning.poolSize ?? 10,
      application_name: tuning.applicationName ?? 'digital-key-server',
      // Fail fast rather than hang when PostgreSQL is down (the API answers 503).
      connectionTimeoutMillis: 5_000,
      statement_timeout: 15_000,
    },
  };
}

/** Used by the TypeORM CLI (`typeorm -d dist/src/database/data-source.js`). */
export default new DataSource(dataSourceOptions(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL));
