import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AddPartnerNotifications1796028909537 implements MigrationInterface {
  name = 'AddPartnerNotifications1796028909537';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "partner_notifications" ("id" uuid NOT NULL, "partner" character varying(64) NOT NULL, "key_identifier" character varying(16) NOT NULL, "key_version" integer NOT NULL, "type" character varying(32) NOT NULL, "payload" jsonb NOT NULL DEFAULT '{}', "status" character varying(10) NOT NULL DEFAULT 'pending', "attempts" integer NOT NULL DEFAULT '0', "next_attempt_at" TIMESTAMP WITH TIME ZONE NOT NULL, "last_error" text, "sweeps" integer NOT NULL DEFAULT '0', "delivered_at" TIMESTAMP WITH TIME ZONE, "correlation_id" character varying(64), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "partner_notifications_key_version" UNIQUE ("key_identifier", "key_version"), CONSTRAINT "PK_c740b17cfc07d6e14114f96ef65" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "partner_notifications_open" ON "partner_notifications"  ("next_attempt_at") WHERE status = 'pending'`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."partner_notifications_open"`);
    await queryRunner.query(`DROP TABLE "partner_notifications"`);
  }
}
