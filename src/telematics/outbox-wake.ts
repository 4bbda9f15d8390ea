import type { Redis } from 'ioredis';
import type {
  DataSource,
  EntityManager,
  EntitySubscriberInterface,
  QueryRunner,
  TransactionCommitEvent,
  TransactionRollbackEvent,
} from 'typeorm';

/**
 * Wakes the outbox relay when a transaction that wrote outbox rows commits, so a command leaves
 * at commit instead of at the relay's next poll (which remains the safety net).
 *
 * Not PostgreSQL's NOTIFY: a transaction that notifies takes a database-wide lock at commit and
 * holds it through its WAL flush, so every notifying commit of every process waits in one line
 * (seen on the revocation benchmark as COMMITs waiting on a `Lock: object`). Instead a process
 * with a relay of its own wakes it directly, and a process without one (the api) publishes on a
 * Redis channel the relays subscribe to. Both happen after COMMIT returns, never inside it.
 */

/** The Redis channel on which processes without a relay announce committed outbox rows. */
export function outboxCommittedChannel(queuePrefix: string): string {
  return `${queuePrefix}:outbox-committed`;
}

interface Wake {
  /** Relays of this process. */
  readonly local: Set<() => void>;
  /** How this process tells relays elsewhere, when it has none of its own. */
  remote?: () => void;
}

const wakes = new WeakMap<DataSource, Wake>();
/** Open transactions that wrote outbox rows. */
const written = new WeakSet<QueryRunner>();

function fire(wake: Wake): void {
  if (wake.local.size > 0) for (const listener of wake.local) listener();
  else wake.remote?.();
}

class OutboxCommitSubscriber implements EntitySubscriberInterface {
  constructor(private readonly wake: Wake) {}

  afterTransactionCommit(event: TransactionCommitEvent): void {
    if (written.has(event.queryRunner)) {
      written.delete(event.queryRunner);
      fire(this.wake);
    }
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    written.delete(event.queryRunner);
  }
}

function wakeOf(dataSource: DataSource): Wake {
  let wake = wakes.get(dataSource);
  if (!wake) {
    wake = { local: new Set() };
    wakes.set(dataSource, wake);
    dataSource.subscribers.push(new OutboxCommitSubscriber(wake));
  }
  return wake;
}

/** Called after a statement wrote outbox rows: the relays wake once its transaction commits. */
export function outboxRowsWritten(manager: EntityManager): void {
  const wake = wakeOf(manager.dataSource);
  const runner = manager.queryRunner;
  if (runner?.isTransactionActive) written.add(runner);
  else fire(wake);
}

/** Registers a relay of this process; returns the function that removes it. */
export function onOutboxCommitted(dataSource: DataSource, listener: () => void): () => void {
  const wake = wakeOf(dataSource);
  wake.local.add(listener);
  return () => wake.local.delete(listener);
}

/**
 * Makes this process announce its committed outbox rows on Redis when it has no relay of its
 * own. At most one PUBLISH is in flight; commits meanwhile are covered by one more after it.
 * A lost announcement costs one poll interval, nothing else.
 */
export function announceOutboxCommits(dataSource: DataSource, redis: Redis, queuePrefix: string): void {
  const channel = outboxCommittedChannel(queuePrefix);
  let inFlight = false;
  let again = false;
  const publish = (): void => {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    void redis
      .publish(channel, '')
      .catch(() => undefined)
      .finally(() => {
        inFlight = false;
        if (again) {
          again = false;
          publish();
        }
      });
  };
  wakeOf(dataSource).remote = publish;
}
