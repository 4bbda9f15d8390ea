import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, problemTypeUri, type ProblemType } from '../../common/errors/problem.js';
import { PartnerCallError } from '../device-oem/device-oem-backend.js';
import { InvitationError, DeviceRegistrationError } from '../device/simulated-device.js';
import { SecureElementError } from '../secure-element/secure-element-error.js';
import { PairingFailure, UnknownAccessProfile, WorldCallError } from '../world/simulated-world.js';
import { CONTROL_OPERATIONS, type ControlOperation, type ControlOperationId } from './control-operations.js';
import { ControlError, type Simulator } from './simulator.js';

type Params = Record<string, string>;
type Body = Record<string, unknown>;
type Handler = (params: Params, body: Body) => unknown;

const MAX_BODY = 16 * 1024;

/** The simulator's operations behind each documented route. */
function handlers(sim: Simulator): Record<ControlOperationId, Handler> {
  return {
    health: () => ({ status: 'ok', cars: sim.world.cars().length, devices: sim.world.devices().length }),
    provisionCar: (_, body) => sim.provisionCar(body.vin as string),
    listCars: () => ({ items: sim.cars() }),
    getCar: (params) => sim.car(params.vin),
    setCarOnline: (params, body) => sim.setCarOnline(params.vin, body.online as boolean),
    carPairingMode: (params, body) => sim.pairingMode(params.vin, body.sessionId as string | undefined),
    createDevice: (_, body) => sim.createDevice(body),
    listDevices: () => ({ items: sim.devices() }),
    getDevice: (params) => sim.device(params.deviceId),
    setDeviceOnline: (params, body) => sim.setDeviceOnline(params.deviceId, body.online as boolean),
    pairDevice: (params, body) => sim.pair(params.deviceId, body as Parameters<Simulator['pair']>[1]),
    tap: (params, body) => sim.tap(params.deviceId, body as Parameters<Simulator['tap']>[1]),
    share: (params, body) => sim.share(params.deviceId, body as Parameters<Simulator['share']>[1]),
    deleteKey: (params) => sim.deleteKey(params.deviceId, params.keyId),
    lostMode: (params, body) => sim.lostMode(params.deviceId, body.enabled as boolean),
  };
}

function problem(reply: FastifyReply, request: FastifyRequest, type: ProblemType, detail: string, status?: number) {
  const code = status ?? PROBLEM_TYPES[type].status;
  return reply
    .code(code)
    .type(PROBLEM_CONTENT_TYPE)
    .send({
      type: problemTypeUri(type),
      title: PROBLEM_TYPES[type].title,
      status: code,
      detail,
      instance: request.url,
    });
}

const TYPE_OF_STATUS: Readonly<Record<number, ProblemType>> = { 400: 'bad-request', 404: 'not-found', 409: 'conflict' };

/** Maps what the simulator threw to a problem; nothing internal (stacks, keys) reaches the body. */
function classify(error: unknown): { type: ProblemType; detail: string; status?: number } {
  if (error instanceof ControlError) return { type: TYPE_OF_STATUS[error.status], detail: error.message };
  if (error instanceof PairingFailure || error instanceof InvitationError || error instanceof DeviceRegistrationError)
    return { type: 'conflict', detail: error.message };
  if (error instanceof SecureElementError) return { type: 'conflict', detail: error.message };
  if (error instanceof UnknownAccessProfile) return { type: 'conflict', detail: error.message };
  if (error instanceof WorldCallError || error instanceof PartnerCallError) {
    if (error.status === 404) return { type: 'not-found', detail: error.message };
    if (error.status === 409 || error.status === 422) return { type: 'conflict', detail: error.message };
    if (error.status >= 400 && error.status < 500) return { type: 'bad-request', detail: error.message };
    return { type: 'service-unavailable', detail: error.message };
  }
  const fastify = error as Partial<FastifyError> | null;
  if (fastify?.validation) return { type: 'validation-failed', detail: fastify.message ?? 'invalid request' };
  if (fastify?.statusCode === 413) return { type: 'payload-too-large', detail: 'the body is too large' };
  if (fastify?.statusCode === 415) return { type: 'unsupported-media-type', detail: 'the body must be JSON' };
  if (fastify?.statusCode === 400) return { type: 'bad-request', detail: fastify.message ?? 'malformed request' };
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EAI_AGAIN)$/.test(code))
    return { type: 'service-unavailable', detail: `the server cannot be reached (${code})` };
  if (error instanceof Error && error.message.startsWith('condition not met within'))
    return { type: 'service-unavailable', detail: 'the server or the car did not answer in time' };
  return { type: 'internal', detail: 'the simulator failed; see its log' };
}

/** The control API (plain HTTP, JSON): every route of `CONTROL_OPERATIONS`, errors as problem+json. */
export function createControlApi(sim: Simulator): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: MAX_BODY,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  const table = handlers(sim);
  for (const operation of CONTROL_OPERATIONS as readonly ControlOperation[]) {
    const handler = table[operation.operationId as ControlOperationId];
    app.route({
      method: operation.method,
      url: operation.path.replace(/\{(\w+)\}/g, ':$1'),
      schema: {
        ...(operation.params
          ? {
              params: {
                type: 'object',
                properties: operation.params,
                required: Object.keys(operation.params),
              },
            }
          : {}),
        ...(operation.body ? { body: operation.body } : {}),
      },
      handler: async (request, reply) => {
        const body = (request.body ?? {}) as Body;
        const result = await handler(request.params as Params, body);
        return reply.code(operation.status).send(result);
      },
    });
  }
  app.setErrorHandler((error, request, reply) => {
    const { type, detail, status } = classify(error);
    if (type === 'internal') {
      process.stderr.write(
        `sim: ${request.method} ${request.url} failed: ${error instanceof Error ? error.message : 'error'}\n`,
      );
    }
    return problem(reply, request, type, detail, status);
  });
  app.setNotFoundHandler((request, reply) =>
    problem(reply, request, 'not-found', `no route ${request.method} ${request.url.split('?')[0]}`),
  );
  return app;
}

/** Listens and returns the port. */
export async function listenControlApi(app: FastifyInstance, host: string, port: number): Promise<number> {
  await app.listen({ host, port });
  return (app.server.address() as AddressInfo).port;
}
