/**
 * The control API's operations, described once: Fastify validates requests with these schemas
 * and `openapi/sim-control.json` is generated from them (`node dist/src/sim/control/export-openapi.js`).
 */

type Schema = Record<string, unknown>;

const VIN: Schema = { type: 'string', pattern: '^[A-HJ-NPR-Z0-9]{17}$', description: 'Vehicle identification number.' };
const KEY_ID: Schema = { type: 'string', pattern: '^[0-9a-f]{12,16}$', description: 'Key identifier, hex.' };
const DEVICE_ID: Schema = { type: 'string', minLength: 1, maxLength: 64 };
const ACTIONS = ['unlock', 'lock', 'engine-start', 'trunk'];

function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', additionalProperties: false, properties, required };
}

const PAIRING_MODE: Schema = {
  type: 'object',
  properties: {
    pairingSessionId: { type: 'string' },
    failedAttempts: { type: 'integer' },
    lockedOut: { type: 'boolean' },
  },
  required: ['failedAttempts', 'lockedOut'],
};

const ENTITLEMENTS: Schema = {
  type: 'object',
  description: 'Rights and limits (PROTOCOL.md §6).',
  properties: { rights: { type: 'array', items: { type: 'string' } } },
  required: ['rights'],
};

const CAR: Schema = {
  type: 'object',
  properties: {
    vin: VIN,
    vehicleId: { type: 'string', format: 'uuid', description: "The server's id of the vehicle." },
    vehicleIdentifier: { type: 'string', description: '8-byte vehicle identifier, hex.' },
    online: { type: 'boolean', description: 'Whether the telematics unit is reachable.' },
    keyListVersion: { type: 'integer' },
    lastSeq: { type: 'integer', description: 'Last telematics command sequence number applied.' },
    pairingMode: PAIRING_MODE,
    ecu: { type: 'object', description: 'Locked, trunk, engine.' },
    keys: {
      type: 'array',
      description: "The car's allow-list.",
      items: {
        type: 'object',
        properties: {
          keyId: KEY_ID,
          role: { type: 'string', enum: ['owner', 'friend'] },
          state: { type: 'string', enum: ['pending', 'active', 'suspended', 'terminated'] },
          entitlements: ENTITLEMENTS,
          hasKpersistent: { type: 'boolean' },
          pairedLocally: { type: 'boolean' },
          lastUsedAt: { type: 'string', format: 'date-time' },
        },
        required: ['keyId', 'role', 'state', 'hasKpersistent'],
      },
    },
  },
  required: ['vin', 'vehicleId', 'vehicleIdentifier', 'online', 'keys'],
};

const CAR_DETAIL: Schema = {
  allOf: [
    CAR,
    {
      type: 'object',
      properties: {
        eventCount: { type: 'integer' },
        events: {
          type: 'array',
          description: 'The last 100 entries of the event log: decisions (transactions), key-list changes, pairing.',
          items: { type: 'object', properties: { kind: { type: 'string' }, at: { type: 'integer' } } },
        },
        pendingReports: { type: 'integer', description: 'Reports to the server waiting for coverage.' },
      },
      required: ['events'],
    },
  ],
};

const DEVICE: Schema = {
  type: 'object',
  properties: {
    deviceId: { type: 'string' },
    name: { type: 'string' },
    model: { type: 'string' },
    online: { type: 'boolean', description: "Whether its maker's pushes reach it." },
    keys: {
      type: 'array',
      description: 'The Wallet.',
      items: {
        type: 'object',
        properties: {
          keyId: KEY_ID,
          vehicleIdentifier: { type: 'string' },
          vin: VIN,
          role: { type: 'string', enum: ['owner', 'friend'] },
          state: { type: 'string', enum: ['active', 'suspended', 'terminated'], description: 'In the SE.' },
          wallet: { type: 'string', enum: ['paired', 'registered'] },
          serverState: { type: 'string' },
          entitlements: ENTITLEMENTS,
        },
        required: ['keyId', 'vehicleIdentifier', 'role', 'state'],
      },
    },
    keyUpdates: { type: 'array', items: { type: 'object' }, description: 'Pushes applied (last 100).' },
  },
  required: ['deviceId', 'model', 'online', 'keys'],
};

const PARTNER_KEY: Schema = {
  type: 'object',
  properties: { keyId: KEY_ID, vehicleId: { type: 'string' }, role: { type: 'string' }, state: { type: 'string' } },
  required: ['keyId', 'state'],
};

function list(items: Schema): Schema {
  return { type: 'object', properties: { items: { type: 'array', items } }, required: ['items'] };
}

export interface ControlOperation {
  readonly operationId: string;
  readonly method: 'GET' | 'POST';
  /** OpenAPI form: `/cars/{vin}`. */
  readonly path: string;
  readonly summary: string;
  readonly description?: string;
  readonly params?: Record<string, Schema>;
  readonly query?: Record<string, Schema>;
  readonly body?: Schema;
  readonly status: 200 | 201;
  readonly response: Schema;
  readonly problems: readonly number[];
}

export const CONTROL_OPERATIONS = [
  {
    operationId: 'health',
    method: 'GET',
    path: '/health',
    summary: 'Liveness of the simulator',
    status: 200,
    response: {
      type: 'object',
      properties: { status: { const: 'ok' }, cars: { type: 'integer' }, devices: { type: 'integer' } },
      required: ['status'],
    },
    problems: [],
  },
  {
    operationId: 'provisionCar',
    method: 'POST',
    path: '/cars',
    summary: 'Provision a car with the server (POST /v1/vehicles)',
    description:
      'The car generates its key pair, the server issues its identifier and certificate, and the car pins the trust anchors the server returns. Its telematics URL points at this simulator.',
    body: object({ vin: VIN }, ['vin']),
    status: 201,
    response: CAR,
    problems: [400, 409, 503],
  },
  {
    operationId: 'listCars',
    method: 'GET',
    path: '/cars',
    summary: 'The simulated cars',
    status: 200,
    response: list(CAR),
    problems: [],
  },
  {
    operationId: 'getCar',
    method: 'GET',
    path: '/cars/{vin}',
    summary: 'One car: online flag, allow-listed keys with state, event log',
    params: { vin: VIN },
    status: 200,
    response: CAR_DETAIL,
    problems: [400, 404],
  },
  {
    operationId: 'setCarOnline',
    method: 'POST',
    path: '/cars/{vin}/online',
    summary: 'Telematics coverage: offline, the server cannot reach the car and its reports wait',
    params: { vin: VIN },
    body: object({ online: { type: 'boolean' } }, ['online']),
    status: 200,
    response: CAR,
    problems: [400, 404],
  },
  {
    operationId: 'carPairingMode',
    method: 'POST',
    path: '/cars/{vin}/pairing',
    summary: 'Put the car in pairing mode (§3.1)',
    description:
      'Without `sessionId` the simulator starts owner pairing on the server as the operator (POST /v1/vehicles/{vin}/owner-pairing) and answers with the password for the owner once the car holds the verifier. With `sessionId` (a session the operator started) it waits until the car holds that verifier.',
    params: { vin: VIN },
    body: object({ sessionId: { type: 'string', minLength: 1, maxLength: 64 } }),
    status: 200,
    response: {
      type: 'object',
      properties: {
        vin: VIN,
        sessionId: { type: 'string' },
        password: { type: 'string', description: 'Only when the simulator started the session.' },
        pairingMode: PAIRING_MODE,
      },
      required: ['vin', 'sessionId', 'pairingMode'],
    },
    problems: [400, 404, 409, 503],
  },
  {
    operationId: 'createDevice',
    method: 'POST',
    path: '/devices',
    summary: 'A new phone with a software SE, signed in with the Device OEM backend',
    body: object({
      name: { type: 'string', minLength: 1, maxLength: 64 },
      model: { type: 'string', minLength: 1, maxLength: 64 },
    }),
    status: 201,
    response: DEVICE,
    problems: [400],
  },
  {
    operationId: 'listDevices',
    method: 'GET',
    path: '/devices',
    summary: 'The simulated phones',
    status: 200,
    response: list(DEVICE),
    problems: [],
  },
  {
    operationId: 'getDevice',
    method: 'GET',
    path: '/devices/{deviceId}',
    summary: 'One phone and its Wallet: keys with vehicle, role, state, entitlements',
    params: { deviceId: DEVICE_ID },
    status: 200,
    response: DEVICE,
    problems: [400, 404],
  },
  {
    operationId: 'setDeviceOnline',
    method: 'POST',
    path: '/devices/{deviceId}/online',
    summary: "Reach of the phone: offline, its maker's backend holds the pushes for it",
    params: { deviceId: DEVICE_ID },
    body: object({ online: { type: 'boolean' } }, ['online']),
    status: 200,
    response: DEVICE,
    problems: [400, 404],
  },
  {
    operationId: 'pairDevice',
    method: 'POST',
    path: '/devices/{deviceId}/pair',
    summary: 'Owner pairing over NFC at the car (§3.2–3.4)',
    description:
      'The operator has started a session (POST /v1/vehicles/{vin}/owner-pairing, or POST /cars/{vin}/pairing here). The phone pairs with the password, registers the key through the Device OEM backend, and the call answers once the car acknowledged ADD_KEY.',
    params: { deviceId: DEVICE_ID },
    body: object(
      {
        vin: VIN,
        password: { type: 'string', pattern: '^[0-9]{8}$' },
        sessionId: { type: 'string', minLength: 1, maxLength: 64 },
      },
      ['vin', 'password'],
    ),
    status: 200,
    response: {
      type: 'object',
      properties: { keyId: KEY_ID, vin: VIN, deviceId: { type: 'string' }, state: { type: 'string' } },
      required: ['keyId', 'vin', 'state'],
    },
    problems: [400, 404, 409, 503],
  },
  {
    operationId: 'tap',
    method: 'POST',
    path: '/devices/{deviceId}/tap',
    summary: "Hold the phone to one of the car's readers (§4): the car's decision",
    description:
      '`mode: standard` makes the phone forget its Kpersistent for the car first, so the transaction is a standard one; by default the fast path is used when both sides hold one. The reader follows the action (door, console for engine-start, trunk) unless given.',
    params: { deviceId: DEVICE_ID },
    body: object(
      {
        vin: VIN,
        action: { type: 'string', enum: ACTIONS },
        mode: { type: 'string', enum: ['fast', 'standard'] },
        reader: { type: 'string', enum: ['door', 'console', 'trunk'] },
      },
      ['vin', 'action'],
    ),
    status: 200,
    response: {
      type: 'object',
      properties: {
        allowed: { type: 'boolean' },
        result: { type: 'string', enum: ['granted', 'denied', 'failed'] },
        reason: { type: 'string' },
        transaction: { type: 'string', enum: ['standard', 'fast', 'none'] },
        reader: { type: 'string' },
        action: { type: 'string' },
        keyId: KEY_ID,
        durationMicros: { type: 'number', description: 'Car-side processing time.' },
        wallMicros: { type: 'integer' },
        ecu: { type: 'object' },
      },
      required: ['allowed', 'result', 'reason', 'transaction', 'durationMicros'],
    },
    problems: [400, 404],
  },
  {
    operationId: 'share',
    method: 'POST',
    path: '/devices/{deviceId}/share',
    summary: "Share a key with a friend's phone through the Device OEM's invitation relay (§7)",
    params: { deviceId: DEVICE_ID },
    body: object(
      {
        keyId: KEY_ID,
        friendDeviceId: DEVICE_ID,
        profile: { type: 'string', minLength: 1, maxLength: 64, description: 'Access profile name.' },
        pin: { type: 'string', pattern: '^[0-9]{6}$' },
        validitySeconds: { type: 'integer', minimum: 60, maximum: 31_536_000 },
      },
      ['keyId', 'friendDeviceId', 'profile'],
    ),
    status: 200,
    response: {
      type: 'object',
      properties: {
        friendKeyId: KEY_ID,
        friendDeviceId: { type: 'string' },
        vin: VIN,
        profile: { type: 'string' },
        state: { type: 'string', description: "The friend key's state on the server." },
      },
      required: ['friendKeyId', 'friendDeviceId', 'state'],
    },
    problems: [400, 404, 409, 503],
  },
  {
    operationId: 'deleteKey',
    method: 'POST',
    path: '/devices/{deviceId}/keys/{keyId}/delete',
    summary: 'Delete a key in the Wallet: termination attestation to the server (§5)',
    params: { deviceId: DEVICE_ID, keyId: KEY_ID },
    status: 200,
    response: {
      type: 'object',
      properties: {
        keyId: KEY_ID,
        deviceId: { type: 'string' },
        state: {
          type: 'string',
          description:
            "The key's state on the server (`terminating`, …), or `deleted-offline` when the phone is offline: the SE disabled the key and the signed proof is sent when the phone is back online.",
        },
      },
      required: ['keyId', 'state'],
    },
    problems: [400, 404, 409, 503],
  },
  {
    operationId: 'lostMode',
    method: 'POST',
    path: '/devices/{deviceId}/lost-mode',
    summary: 'Lost mode: the Device OEM suspends (enabled) or resumes every key of the phone (§5)',
    params: { deviceId: DEVICE_ID },
    body: object({ enabled: { type: 'boolean' } }, ['enabled']),
    status: 200,
    response: {
      type: 'object',
      properties: {
        deviceId: { type: 'string' },
        lostMode: { type: 'boolean' },
        keys: { type: 'array', items: PARTNER_KEY },
      },
      required: ['deviceId', 'lostMode', 'keys'],
    },
    problems: [400, 404, 409, 503],
  },
] as const satisfies readonly ControlOperation[];

export type ControlOperationId = (typeof CONTROL_OPERATIONS)[number]['operationId'];

const PROBLEM: Schema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
  },
  required: ['type', 'title', 'status'],
};

const PROBLEM_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'Malformed or invalid request.',
  404: 'No such car, device or key.',
  409: 'Not possible in the current state (car offline, pairing refused, key not shareable, …).',
  503: 'The server could not be reached, refused, or did not answer in time.',
};

/** The OpenAPI 3.1 document of the control API. */
export function buildControlOpenApi(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of CONTROL_OPERATIONS as readonly ControlOperation[]) {
    const parameters = [
      ...Object.entries(operation.params ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
      ...Object.entries(operation.query ?? {}).map(([name, schema]) => ({ name, in: 'query', schema })),
    ];
    const responses: Record<string, unknown> = {
      [operation.status]: {
        description: operation.status === 201 ? 'Created.' : 'OK.',
        content: { 'application/json': { schema: operation.response } },
      },
    };
    for (const status of operation.problems) {
      responses[status] = {
        description: PROBLEM_DESCRIPTIONS[status],
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      };
    }
    paths[operation.path] ??= {};
    paths[operation.path][operation.method.toLowerCase()] = {
      operationId: operation.operationId,
      summary: operation.summary,
      ...(operation.description ? { description: operation.description } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(operation.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: operation.body } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Digital key simulator: control API',
      version,
      description:
        'Drives the simulated world (cars, phones with a software SE, the Device OEM backend) against a running server. Plain HTTP on port 9090; errors are RFC 9457 problem+json.',
    },
    servers: [{ url: 'http://localhost:9090' }],
    paths,
    components: { schemas: { Problem: PROBLEM } },
  };
}
