import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AddPairingSessions1796027222060 implements MigrationInterface {
  name = 'AddPairingSessions1796027222060';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "pairing_sessions" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "vehicle_id" uuid NOT NULL, "status" character varying(12) NOT NULL, "salt" bytea NOT NULL, "scrypt_n" integer NOT NULL, "scrypt_r" integer NOT NULL, "scrypt_p" integer NOT NULL, "sealed_verifier" bytea, "verifier_delivery_id" uuid, "verifier_acked_at" TIMESTAMP WITH TIME ZONE, "owner_key_id" uuid, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "created_by" character varying(128) NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_e5fba9574321ec5176aa97bf997" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "pairing_sessions_vehicle_status" ON "pairing_sessions"  ("vehicle_id", "status") `,
    );
    await queryRunner.query(
      `ALTER TABLE "pairing_sessions" ADD CONSTRAINT "FK_0841ffa59e6af3f3bf344b03321" FOREIGN KEY ("vehicle_id") REFERENCES "vehicles"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "pairing_sessions" DROP CONSTRAINT "FK_0841ffa59e6af3f3bf344b03321"`);
    await queryRunner.query(`DROP INDEX "public"."pairing_sessions_vehicle_status"`);
    await queryRunner.query(`DROP TABLE "pairing_sessions"`);
  }
}
