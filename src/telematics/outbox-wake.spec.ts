import type { Redis } from 'ioredis';
import type { DataSource, EntityManager, EntitySubscriberInterface, QueryRunner } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { announceOutboxCommits, onOutboxCommitted, outboxCommittedChannel, outboxRowsWritten } from './outbox-wake.js';

/** The parts of TypeORM the wake-up touches: a DataSource's subscribers and a transaction's runner. */
function fakeDataSource() {
  const dataSource = { subscribers: [] as EntitySubscriberInterface[] } as unknown as DataSource;
  const transaction = () => {
    const queryRunner = { isTransactionActive: true } as QueryRunner;
    const manager = { dataSource, queryRunner } as unknown as EntityManager;
    const event = { dataSource, queryRunner, manager, connection: dataSource } as never;
    return {
      manager,
      commit: () => {
        for (const subscriber of dataSource.subscribers) void subscriber.afterTransactionCommit?.(event);
      },
      rollback: () => {
        for (const subscriber of dataSource.subscribers) void subscriber.afterTransactionRollback?.(event);
      },
    };
  };
  return { dataSource, transaction };
}

function fakeRedis() {
  const published: string[] = [];
  let release: (() => void)[] = [];
  const redis = {
    publish: (channel: string) => {
      published.push(channel);
      return new Promise<number>((resolve) => release.push(() => resolve(1)));
    },
  } as unknown as Redis;
  const answer = async () => {
    const pending = release;
    release = [];
    pending.forEach((resolve) => resolve());
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { redis, published, answer };
}

describe('outbox wake-up', () => {
  it('wakes a relay of this process when the transaction that wrote rows commits, not before, not on rollback', () => {
    const { dataSource, transaction } = fakeDataSource();
    let woken = 0;
    const stop = onOutboxCommitted(dataSource, () => (woken += 1));
    const first = transaction();
    outboxRowsWritten(first.manager);
    outboxRowsWritten(first.manager);
    expect(woken).toBe(0);
    first.commit();
    expect(woken).toBe(1);
    const second = transaction();
    outboxRowsWritten(second.manager);
    second.rollback();
    second.commit();
    expect(woken).toBe(1);
    const quiet = transaction();
    quiet.commit();
    expect(woken).toBe(1);
    stop();
    const third = transaction();
    outboxRowsWritten(third.manager);
    third.commit();
    expect(woken).toBe(1);
    expect(dataSource.subscribers).toHaveLength(1);
  });

  it('announces commits on Redis from a process without a relay, one PUBLISH in flight and one more after it', async () => {
    const { dataSource, transaction } = fakeDataSource();
    const { redis, published, answer } = fakeRedis();
    announceOutboxCommits(dataSource, redis, 'dks');
    for (let i = 0; i < 5; i++) {
      const tx = transaction();
      outboxRowsWritten(tx.manager);
      tx.commit();
    }
    expect(published).toEqual([outboxCommittedChannel('dks')]);
    await answer();
    // The four commits during the first PUBLISH are covered by one more.
    expect(published).toHaveLength(2);
    await answer();
    expect(published).toHaveLength(2);
  });
});
