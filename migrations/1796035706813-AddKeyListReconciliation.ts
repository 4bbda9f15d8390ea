import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AddKeyListReconciliation1796035706813 implements MigrationInterface {
  name = 'AddKeyListReconciliation1796035706813';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "vehicles" ADD "sync_key_list_version" bigint`);
    await queryRunner.query(`ALTER TABLE "vehicles" ADD "relayed_key_list_version" bigint NOT NULL DEFAULT '0'`);
    await queryRunner.query(`ALTER TABLE "vehicles" ADD "key_list_mismatch_since" TIMESTAMP WITH TIME ZONE`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "vehicles" DROP COLUMN "key_list_mismatch_since"`);
    await queryRunner.query(`ALTER TABLE "vehicles" DROP COLUMN "relayed_key_list_version"`);
    await queryRunner.query(`ALTER TABLE "vehicles" DROP COLUMN "sync_key_list_version"`);
  }
}
