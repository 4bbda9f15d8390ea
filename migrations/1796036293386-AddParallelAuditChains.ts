import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AddParallelAuditChains1796036293386 implements MigrationInterface {
  name = 'AddParallelAuditChains1796036293386';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "audit_events" ADD "chain" smallint NOT NULL DEFAULT '0'`);
    await queryRunner.query(`CREATE INDEX "audit_events_chain_id" ON "audit_events"  ("chain", "id") `);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."audit_events_chain_id"`);
    await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "chain"`);
  }
}
