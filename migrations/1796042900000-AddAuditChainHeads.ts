import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AddAuditChainHeads1796042900000 implements MigrationInterface {
  name = 'AddAuditChainHeads1796042900000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "audit_chain_heads" ("chain" smallint NOT NULL, "last_id" bigint, "last_hash" character(64) NOT NULL, CONSTRAINT "PK_audit_chain_heads_chain" PRIMARY KEY ("chain"))`,
    );
    // One head per chain (16), each pointing at its chain's last row as it stands.
    await queryRunner.query(
      `INSERT INTO "audit_chain_heads" ("chain", "last_id", "last_hash")
       SELECT c, last.id, COALESCE(last.hash, repeat('0', 64))
         FROM generate_series(0, 15) AS c
         LEFT JOIN LATERAL (SELECT id, hash FROM "audit_events" WHERE "chain" = c ORDER BY id DESC LIMIT 1) AS last ON true`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "audit_chain_heads"`);
  }
}
