import type { MigrationInterface, QueryRunner } from 'typeorm';
import { DEFAULT_ACCESS_PROFILES } from '../src/access-profiles/entitlements-record.js';

export class InitialSchema1796025606325 implements MigrationInterface {
  name = 'InitialSchema1796025606325';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
            CREATE TABLE "access_profiles" (
                "id" uuid NOT NULL DEFAULT gen_random_uuid(),
                "name" character varying(64) NOT NULL,
                "description" text NOT NULL,
                "entitlements" jsonb NOT NULL,
                "builtin" boolean NOT NULL DEFAULT false,
                "retired_at" TIMESTAMP WITH TIME ZONE,
                "version" integer NOT NULL,
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                CONSTRAINT "UQ_023a653c764a994659a8c4ec95d" UNIQUE ("name"),
                CONSTRAINT "PK_2c010ee4f3b3d9c89b46674dd4b" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE TABLE "audit_events" (
                "id" BIGSERIAL NOT NULL,
                "occurred_at" TIMESTAMP WITH TIME ZONE NOT NULL,
                "actor_type" character varying(16) NOT NULL,
                "actor_id" character varying(128) NOT NULL,
                "action" character varying(64) NOT NULL,
                "subject_type" character varying(32) NOT NULL,
                "subject_id" character varying(64) NOT NULL,
                "details" jsonb NOT NULL DEFAULT '{}',
                "correlation_id" character varying(64),
                "prev_hash" character(64) NOT NULL,
                "hash" character(64) NOT NULL,
                CONSTRAINT "PK_910f64d901a5c3e9878f0d4a407" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE TABLE "idempotency_keys" (
                "principal" character varying(128) NOT NULL,
                "key" character varying(255) NOT NULL,
                "request_hash" character(64) NOT NULL,
                "status" character varying(12) NOT NULL,
                "response_status" integer,
                "response_body" jsonb,
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "completed_at" TIMESTAMP WITH TIME ZONE,
                CONSTRAINT "PK_574edfb9ce98100b66a0a2e0f34" PRIMARY KEY ("principal", "key")
            )
        `);
    await queryRunner.query(`
            CREATE INDEX "idempotency_keys_created" ON "idempotency_keys" ("created_at")
        `);
    await queryRunner.query(`
            CREATE TABLE "vehicles" (
                "id" uuid NOT NULL DEFAULT gen_random_uuid(),
                "vin" character varying(17) NOT NULL,
                "vehicle_identifier" character(16) NOT NULL,
                "telematics_url" text NOT NULL,
                "public_key_pem" text NOT NULL,
                "certificate_pem" text NOT NULL,
                "certificate_fingerprint" character(64) NOT NULL,
                "last_seq" bigint NOT NULL DEFAULT '0',
                "acked_seq" bigint NOT NULL DEFAULT '0',
                "key_list_version" bigint NOT NULL DEFAULT '0',
                "acked_key_list_version" bigint NOT NULL DEFAULT '0',
                "acked_key_list_digest" character(64),
                "last_seen_at" TIMESTAMP WITH TIME ZONE,
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                CONSTRAINT "UQ_8288ce015b69c5856cf54e07a67" UNIQUE ("vin"),
                CONSTRAINT "UQ_9343f51e82851f4efc4ef9139fd" UNIQUE ("vehicle_identifier"),
                CONSTRAINT "UQ_e8156e476a164fd39ee7a2f78b7" UNIQUE ("certificate_fingerprint"),
                CONSTRAINT "PK_18d8646b59304dce4af3a9e35b6" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE TABLE "digital_keys" (
                "id" uuid NOT NULL DEFAULT gen_random_uuid(),
                "key_identifier" character varying(16) NOT NULL,
                "vehicle_id" uuid NOT NULL,
                "role" character varying(8) NOT NULL,
                "state" character varying(12) NOT NULL,
                "version" integer NOT NULL,
                "partner" character varying(64) NOT NULL,
                "endpoint_certificate_pem" text NOT NULL,
                "access_profile_id" uuid,
                "entitlements" bytea,
                "owner_key_id" uuid,
                "not_before" TIMESTAMP WITH TIME ZONE,
                "not_after" TIMESTAMP WITH TIME ZONE,
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                CONSTRAINT "UQ_2404b163369a74960acccc5d841" UNIQUE ("key_identifier"),
                CONSTRAINT "PK_4f3a6beca0ecb5a5997564bbf7a" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE INDEX "digital_keys_vehicle_state" ON "digital_keys" ("vehicle_id", "state")
        `);
    await queryRunner.query(`
            CREATE TABLE "deliveries" (
                "id" uuid NOT NULL DEFAULT gen_random_uuid(),
                "vehicle_id" uuid NOT NULL,
                "seq" bigint NOT NULL,
                "command" character varying(24) NOT NULL,
                "fields" jsonb NOT NULL DEFAULT '{}',
                "key_list_version" bigint NOT NULL,
                "status" character varying(8) NOT NULL DEFAULT 'pending',
                "attempts" integer NOT NULL DEFAULT '0',
                "next_attempt_at" TIMESTAMP WITH TIME ZONE NOT NULL,
                "last_error" text,
                "sweeps" integer NOT NULL DEFAULT '0',
                "sent_at" TIMESTAMP WITH TIME ZONE,
                "acked_at" TIMESTAMP WITH TIME ZONE,
                "ack_key_list_digest" character(64),
                "correlation_id" character varying(64),
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                CONSTRAINT "deliveries_vehicle_seq" UNIQUE ("vehicle_id", "seq"),
                CONSTRAINT "PK_a6ef225c5c5f0974e503bfb731f" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE INDEX "deliveries_open" ON "deliveries" ("next_attempt_at")
            WHERE status IN ('pending', 'sent')
        `);
    await queryRunner.query(`
            CREATE TABLE "outbox" (
                "id" uuid NOT NULL DEFAULT gen_random_uuid(),
                "topic" character varying(32) NOT NULL,
                "delivery_id" uuid NOT NULL,
                "correlation_id" character varying(64),
                "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                "published_at" TIMESTAMP WITH TIME ZONE,
                CONSTRAINT "PK_340ab539f309f03bdaa14aa7649" PRIMARY KEY ("id")
            )
        `);
    await queryRunner.query(`
            CREATE INDEX "outbox_unpublished" ON "outbox" ("created_at")
            WHERE published_at IS NULL
        `);
    await queryRunner.query(`
            ALTER TABLE "digital_keys"
            ADD CONSTRAINT "FK_ae9ec30ccf42905ea4c5291a015" FOREIGN KEY ("vehicle_id") REFERENCES "vehicles"("id") ON DELETE RESTRICT ON UPDATE NO ACTION
        `);
    await queryRunner.query(`
            ALTER TABLE "digital_keys"
            ADD CONSTRAINT "FK_7a7d35d743e034dad9f14fc4324" FOREIGN KEY ("access_profile_id") REFERENCES "access_profiles"("id") ON DELETE RESTRICT ON UPDATE NO ACTION
        `);
    // The audit log is append-only: refuse UPDATE and DELETE at the database itself.
    await queryRunner.query(`
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only';
            END;
            $$
        `);
    await queryRunner.query(`
            CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "audit_events"
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
        `);
    // Default access profiles of PROTOCOL.md §6.
    for (const profile of DEFAULT_ACCESS_PROFILES) {
      await queryRunner.query(
        `INSERT INTO "access_profiles" ("name", "description", "entitlements", "builtin", "version") VALUES ($1, $2, $3, true, 1)`,
        [profile.name, profile.description, JSON.stringify(profile.entitlements)],
      );
    }
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER "audit_events_append_only" ON "audit_events"`);
    await queryRunner.query(`DROP FUNCTION audit_events_append_only()`);
    await queryRunner.query(`
            ALTER TABLE "digital_keys" DROP CONSTRAINT "FK_7a7d35d743e034dad9f14fc4324"
        `);
    await queryRunner.query(`
            ALTER TABLE "digital_keys" DROP CONSTRAINT "FK_ae9ec30ccf42905ea4c5291a015"
        `);
    await queryRunner.query(`
            DROP INDEX "public"."outbox_unpublished"
        `);
    await queryRunner.query(`
            DROP TABLE "outbox"
        `);
    await queryRunner.query(`
            DROP INDEX "public"."deliveries_open"
        `);
    await queryRunner.query(`
            DROP TABLE "deliveries"
        `);
    await queryRunner.query(`
            DROP INDEX "public"."digital_keys_vehicle_state"
        `);
    await queryRunner.query(`
            DROP TABLE "digital_keys"
        `);
    await queryRunner.query(`
            DROP TABLE "vehicles"
        `);
    await queryRunner.query(`
            DROP INDEX "public"."idempotency_keys_created"
        `);
    await queryRunner.query(`
            DROP TABLE "idempotency_keys"
        `);
    await queryRunner.query(`
            DROP TABLE "audit_events"
        `);
    await queryRunner.query(`
            DROP TABLE "access_profiles"
        `);
  }
}
