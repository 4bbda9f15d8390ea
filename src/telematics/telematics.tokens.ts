export const DELIVERY_QUEUE = Symbol('DELIVERY_QUEUE');
export const WORKER_REDIS = Symbol('WORKER_REDIS');
export const PRODUCER_REDIS = Symbol('PRODUCER_REDIS');
