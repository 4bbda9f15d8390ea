import { Client } from 'pg';
import { adminRequest, eventually, type SystemEndpoints } from './harness.js';
import type { TestCar } from './test-car.js';

/**
 * What a fault test checks once the fault is over: the server's record (PostgreSQL) against what
 * each car applied. Nothing lost (every command the server committed reached the car), nothing
 * applied twice (each `seq` applied once, in order).
 */

export type Rows = <T>(sql: string, params?: unknown[]) => Promise<T[]>;

/** Rows from a short-lived connection (the database may have been restarted since the last query). */
export function rowsFrom(databaseUrl: string): Rows {
  return async <T>(sql: string, params: unknown[] = []) => {
    const client = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end();
    }
  };
}

export interface CarLedger {
  /** Commands the server committed for the car. */
  committed: number;
  acked: number;
  open: number;
  failed: number;
  /** Committed seqs the car never applied. */
  lost: number;
  /** Applications beyond the first of one seq. */
  duplicated: number;
  /** Applied out of seq order. */
  outOfOrder: number;
}

export async function carLedger(rows: Rows, car: TestCar): Promise<CarLedger> {
  const deliveries = await rows<{ seq: string; status: string }>(
    `SELECT d.seq, d.status FROM deliveries d JOIN vehicles v ON v.id = d.vehicle_id WHERE v.vin = $1 ORDER BY d.seq`,
    [car.vin],
  );
  const applied = car.appliedCommands.map((command) => command.seq);
  const appliedOnce = new Set(applied);
  return {
    committed: deliveries.length,
    acked: deliveries.filter((d) => d.status === 'acked').length,
    open: deliveries.filter((d) => d.status === 'pending' || d.status === 'sent').length,
    failed: deliveries.filter((d) => d.status === 'failed').length,
    lost: deliveries.filter((d) => !appliedOnce.has(Number(d.seq))).length,
    duplicated: applied.length - appliedOnce.size,
    outOfOrder: applied.filter((seq, i) => i > 0 && seq <= applied[i - 1]).length,
  };
}

/** Waits until every command committed for the car is acked, then returns the ledger. */
export async function settledLedger(rows: Rows, car: TestCar, timeoutMs = 30_000): Promise<CarLedger> {
  return eventually(
    () => carLedger(rows, car),
    (ledger) => ledger.committed > 0 && ledger.acked + ledger.failed === ledger.committed,
    { timeoutMs, intervalMs: 200 },
  );
}

export type LifecycleOperation = 'suspend' | 'resume' | 'terminate';

/** One operator lifecycle call; returns the HTTP status (200, 409 for an illegal move, 503 …). */
export async function changeKey(
  system: Pick<SystemEndpoints, 'adminUrl' | 'operatorToken'>,
  keyId: string,
  operation: LifecycleOperation,
): Promise<number> {
  const token = await system.operatorToken(['keys:write']);
  const res = await adminRequest(system, 'POST', `/v1/keys/${keyId}/${operation}`, { token, body: {} });
  return res.status;
}

/** The state the car holds for a key: the last SET_STATE it applied (ADD_KEY makes it active). */
export function carKeyState(car: TestCar, keyId: string): string | undefined {
  let state: string | undefined;
  for (const command of car.appliedCommands) {
    if (command.keyId !== keyId) continue;
    if (command.cmd === 'ADD_KEY') state = 'active';
    if (command.cmd === 'SET_STATE') state = command.state;
  }
  return state;
}

export async function serverKeyState(rows: Rows, keyId: string): Promise<{ state: string; version: number }> {
  const [key] = await rows<{ state: string; version: number }>(
    'SELECT state, version FROM digital_keys WHERE key_identifier = $1',
    [keyId],
  );
  return key;
}
