import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Job } from 'bullmq';
import { createDeliveryWorker, deferJob, inBackoff, type DeliveryWorker } from './delivery-queue.js';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { AppConfig } from '../config/config.js';
import { AppMetrics } from '../metrics/metrics.js';
import { CommandSigner } from './command-signer.js';
import type { Delivery } from './delivery.entity.js';
import { DeliveryLedgerService, type CommandTarget } from './delivery-ledger.service.js';
import { JOB_NAMES, deliveryBackoffMs, type DeliveryJobData } from './delivery-policy.js';
import { TelematicsClient, VehicleUnreachableError } from './telematics-client.js';
import { COMMAND_SECRETS, WORKER_REDIS, type CommandSecrets } from './telematics.tokens.js';

/** How long the server waits for an ack the car promised to post later (202). */
const ACK_WAIT_MS = 60_000;
const CONCURRENCY = 32;

/**
 * Sends signed commands to cars. A job names one delivery; the worker sends every open
 * delivery of that car up to it, oldest first, so a car never sees seq n+1 before n.
 * Duplicates are harmless: the car acknowledges a seq it already applied without re-applying.
 *
 * Jobs of one car run one at a time in a process, each reading the car's open deliveries when
 * its turn comes, so a burst of jobs does not send the same commands over and over. While the
 * car is in backoff after a failed attempt, its other jobs wait for that attempt's due time
 * instead of calling the car themselves: one call per backoff period, however many commands wait.
 */
@Injectable()
export class VehicleCommandWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(VehicleCommandWorker.name);
  private worker?: DeliveryWorker;
  private readonly signer: CommandSigner;
  private readonly client: TelematicsClient;
  /** The tail of each car's chain of jobs in this process. */
  private readonly vehicleTurns = new Map<string, Promise<unknown>>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly ledger: DeliveryLedgerService,
    @Inject(WORKER_REDIS) private readonly connection: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(COMMAND_SECRETS) private readonly commandSecrets?: CommandSecrets,
    @Optional() private readonly metrics?: AppMetrics,
  ) {
    this.signer = new CommandSigner(config.pki.telematicsKeyPem);
    this.client = new TelematicsClient(config.telematicsCaPem, config.delivery.requestTimeoutMs);
  }

  onApplicationBootstrap(): void {
    this.worker = createDeliveryWorker('vehicleCommands', (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: this.config.queuePrefix,
      concurrency: CONCURRENCY,
      backoff: this.config.delivery,
      metrics: this.metrics,
    });
    this.worker.on('error', (error) => this.logger.warn({ msg: 'queue connection error', error: error.message }));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    this.client.close();
  }

  async process(job: Job<DeliveryJobData, void, string>, token?: string): Promise<void> {
    if (job.name !== JOB_NAMES.deliverVehicleCommand) throw new Error(`no handler for job ${job.name}`);
    // The job's car and its open deliveries up to the job's, in one statement.
    const target = await this.ledger.openForJob(job.data.deliveryId);
    if (!target) return;
    const { vehicle } = target;
    // Read before this job's turn: good unless an earlier job of the car is still running here,
    // and then read again once it is done.
    const waited = this.vehicleTurns.has(vehicle.id);
    await this.inTurn(vehicle.id, async () => {
      const open = waited ? await this.ledger.openUpTo(vehicle.id, target.seq) : target.open;
      // The car failed recently: wait for its next attempt; meanwhile its new revocations also
      // ride in the owners' mailboxes (once per key-list version).
      if (token && inBackoff(open[0])) {
        await this.relay(vehicle, job.data.correlationId ?? open[open.length - 1].correlationId);
        await deferJob(job, token, open[0].nextAttemptAt);
      }
      for (const delivery of open) {
        const outcome = await this.deliver(vehicle, delivery, job.data.correlationId ?? delivery.correlationId);
        if (outcome === 'stop') return;
      }
    });
  }

  /** The revocation relay for a car out of reach (PROTOCOL.md §4.7); a failure is logged, not thrown. */
  private relay(vehicle: CommandTarget, correlationId: string | null): Promise<void> {
    return this.ledger
      .relayIfUndelivered(vehicle.id, correlationId)
      .catch((error: unknown) =>
        this.logger.error({ msg: 'revocation relay not sent', vin: vehicle.vin, error: String(error), correlationId }),
      );
  }

  /** Runs `work` after every earlier job of the same car in this process has finished. */
  private inTurn(vehicleId: string, work: () => Promise<void>): Promise<void> {
    const previous = this.vehicleTurns.get(vehicleId) ?? Promise.resolve();
    const run = previous.then(work);
    const tail = run.catch(() => undefined);
    this.vehicleTurns.set(vehicleId, tail);
    void tail.then(() => {
      if (this.vehicleTurns.get(vehicleId) === tail) this.vehicleTurns.delete(vehicleId);
    });
    return run;
  }

  /** Secret fields some commands carry, read at send time so they never sit in queue data. */
  private async secretFields(delivery: Delivery): Promise<Record<string, unknown> | undefined> {
    if (delivery.command !== 'PAIRING_VERIFIER') return {};
    if (!this.commandSecrets || !delivery.fields.pairingSessionId) return undefined;
    const verifier = await this.commandSecrets.verifierFields(delivery.fields.pairingSessionId);
    return verifier ? { verifier } : undefined;
  }

  /**
   * Sends one command. `sent`: the car took it (acked, or accepted with an ack to follow);
   * `skipped`: it no longer applies (a superseded pairing verifier) and later ones may go;
   * `stop`: the car refused it, later commands wait.
   */
  private async deliver(
    vehicle: CommandTarget,
    delivery: Delivery,
    correlationId: string | null,
  ): Promise<'sent' | 'skipped' | 'stop'> {
    const log = { vin: vehicle.vin, seq: delivery.seq, cmd: delivery.command, deliveryId: delivery.id, correlationId };
    const secrets = await this.secretFields(delivery);
    if (!secrets) {
      await this.ledger.markRejected(delivery, 'no longer applicable: the pairing session was superseded or completed');
      this.logger.log({ msg: 'command skipped: no longer applicable', ...log });
      return 'skipped';
    }
    const jws = await this.signer.sign(this.signer.commandFor(vehicle.vehicleIdentifier, delivery, secrets));
    try {
      const outcome = await this.client.send(vehicle.telematicsUrl, jws);
      switch (outcome.kind) {
        case 'acked':
          await this.ledger.recordAck(vehicle, outcome.ack, { duplicates: 'accept' });
          this.logger.log({ msg: 'command acked', ...log });
          return 'sent';
        case 'accepted':
          await this.ledger.markSent(delivery, new Date(Date.now() + ACK_WAIT_MS));
          this.logger.log({ msg: 'command accepted; ack to follow', ...log });
          return 'sent';
        case 'rejected':
          await this.ledger.markRejected(delivery, `car refused the command (${outcome.status}): ${outcome.detail}`);
          this.logger.warn({ msg: 'command refused by the car', status: outcome.status, ...log });
          return 'stop';
      }
    } catch (error) {
      const reason = error instanceof VehicleUnreachableError ? error.message : `ack not accepted: ${String(error)}`;
      const attempt = delivery.attempts + 1;
      const next = new Date(Date.now() + deliveryBackoffMs(attempt, this.config.delivery));
      await this.ledger.markAttemptFailed(delivery, reason, next);
      this.logger.warn({ msg: 'car unreachable; will retry', attempt, reason, ...log });
      // While the car is out of reach its revocations also travel through the owners' phones.
      await this.relay(vehicle, correlationId);
      // Rethrow so BullMQ schedules the retry with the same capped backoff.
      throw error instanceof Error ? error : new Error(reason);
    }
  }
}
