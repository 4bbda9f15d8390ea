/** The delivery queues (`DeliveryQueues`), one per outbox route. */
export const DELIVERY_QUEUES = Symbol('DELIVERY_QUEUES');
export const WORKER_REDIS = Symbol('WORKER_REDIS');
export const PRODUCER_REDIS = Symbol('PRODUCER_REDIS');
export const COMMAND_SECRETS = Symbol('COMMAND_SECRETS');

/** Supplies secret command fields at send time (they are never stored in clear or queued). */
export interface CommandSecrets {
  verifierFields(pairingSessionId: string): Promise<Record<string, unknown> | undefined>;
}
