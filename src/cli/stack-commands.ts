import { CliError, formatTable, stringOption, type CliCommand, type CommandContext } from './cli-framework.js';
import { ACTIONS, Stack, describeTap, randomVin, stackOptions, type TapAction } from './stack.js';

const SIM = '[--sim-url <url>] [--json]';
const ADMIN = '[--admin-url <url>] [--token <jwt>] [--json]';
const BOTH = '[--admin-url <url>] [--sim-url <url>] [--token <jwt>] [--json]';
const KEY_ID = /^[0-9a-f]{12,16}$/;
const VIN = /^[A-HJ-NPR-Z0-9]{17}$/;

const stackOf = (context: CommandContext): Stack => new Stack(stackOptions(context.options));

function vinOption(context: CommandContext, fallback?: string): string {
  const vin = stringOption(context, 'vin', fallback);
  if (!VIN.test(vin)) throw new CliError(`--vin "${vin}" is not a VIN: 17 characters from A-Z (no I, O, Q) and 0-9`, 2);
  return vin;
}

function keyIdArgument(context: CommandContext, option?: string): string {
  const keyId = option ? stringOption(context, option) : context.positionals[0];
  if (keyId === undefined) throw new CliError('the key id is required', 2);
  if (!KEY_ID.test(keyId)) throw new CliError(`"${keyId}" is not a key id: 12 to 16 lowercase hex digits`, 2);
  return keyId;
}

function choice<T extends string>(context: CommandContext, name: string, allowed: readonly T[], fallback?: T): T {
  const value = stringOption(context, name, fallback);
  if (!(allowed as readonly string[]).includes(value))
    throw new CliError(`--${name} must be one of ${allowed.join(', ')}; got "${value}"`, 2);
  return value as T;
}

/**
 * A command against the running system: `call` does the work (argument errors first), `render`
 * turns the answer into the readable lines; `--json` prints the answer instead.
 */
function stackCommand<T>(spec: {
  name: string;
  summary: string;
  usage: string;
  call: (stack: Stack, context: CommandContext) => Promise<T>;
  render: (result: T, context: CommandContext) => string[];
}): CliCommand {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: `${spec.name} ${spec.usage}`,
    async run(context) {
      const result = await spec.call(stackOf(context), context);
      if (!context.json) for (const line of spec.render(result, context)) context.out(line);
      return result;
    },
  };
}

function optionalString(context: CommandContext, name: string): string | undefined {
  const value = context.options[name];
  if (value === true) throw new CliError(`--${name} needs a value`, 2);
  return typeof value === 'string' ? value : undefined;
}

const vehicleAdd = stackCommand({
  name: 'vehicle add',
  summary: 'Provision a car in the simulator with the server (a random VIN unless --vin)',
  usage: `[--vin <VIN>] ${SIM}`,
  call: (stack, context) => stack.provisionCar(vinOption(context, randomVin())),
  render: (car) => [
    `car ${car.vin} provisioned: vehicle identifier ${car.vehicleIdentifier}, server id ${car.vehicleId}`,
  ],
});

const deviceAdd = stackCommand({
  name: 'device add',
  summary: 'Create a phone in the simulator (software SE, signed in with the Device OEM backend)',
  usage: `[--name <name>] ${SIM}`,
  call: (stack, context) => stack.createDevice(optionalString(context, 'name')),
  render: (device) => [`device ${device.deviceId} created${device.name ? ` (${device.name})` : ''}`],
});

const pair = stackCommand({
  name: 'pair',
  summary: 'Owner pairing: the operator starts a session, the phone pairs at the car; prints the key id',
  usage: `--vin <VIN> [--device <deviceId>] ${BOTH}`,
  async call(stack, context) {
    const vin = vinOption(context);
    const deviceId = optionalString(context, 'device') ?? (await stack.createDevice('owner')).deviceId;
    return stack.pair(vin, deviceId);
  },
  render: (paired) => [`paired: key ${paired.keyId} on device ${paired.deviceId} for ${paired.vin}, ${paired.state}`],
});

const tap = stackCommand({
  name: 'tap',
  summary: "Hold a phone to the car's reader; prints the car's decision",
  usage: `--device <deviceId> --vin <VIN> --action <${ACTIONS.join('|')}> [--mode fast|standard] ${SIM}`,
  call(stack, context) {
    const deviceId = stringOption(context, 'device');
    const vin = vinOption(context);
    const action = choice<TapAction>(context, 'action', ACTIONS);
    const mode = context.options.mode === undefined ? undefined : choice(context, 'mode', ['fast', 'standard']);
    return stack.tap(deviceId, vin, action, mode);
  },
  render: (outcome) => [`${outcome.action}: ${describeTap(outcome)}${outcome.keyId ? `, key ${outcome.keyId}` : ''}`],
});

const share = stackCommand({
  name: 'share',
  summary: "Share a key with a friend's phone through the Device OEM's invitation relay",
  usage: `--device <deviceId> --key <keyId> --profile <access profile> [--friend <deviceId>] [--pin <6 digits>] ${SIM}`,
  async call(stack, context) {
    const deviceId = stringOption(context, 'device');
    const keyId = keyIdArgument(context, 'key');
    const profile = stringOption(context, 'profile');
    const pin = optionalString(context, 'pin');
    if (pin !== undefined && !/^[0-9]{6}$/.test(pin)) throw new CliError('--pin must be 6 digits', 2);
    const friendDeviceId = optionalString(context, 'friend') ?? (await stack.createDevice('friend')).deviceId;
    return stack.share(deviceId, { keyId, friendDeviceId, profile, ...(pin ? { pin } : {}) });
  },
  render: (shared) => [
    `shared: friend key ${shared.friendKeyId} (${shared.profile}) on device ${shared.friendDeviceId}, ${shared.state} on the server`,
  ],
});

function lifecycle(name: 'suspend' | 'resume' | 'revoke') {
  return stackCommand({
    name,
    summary: `${name[0].toUpperCase()}${name.slice(1)} a key as the operator (the car is told over telematics)`,
    usage: `<keyId> [--reason <text>] ${ADMIN}`,
    call: (stack, context) =>
      stack.keyAction(
        keyIdArgument(context),
        name === 'revoke' ? 'terminate' : name,
        optionalString(context, 'reason'),
      ),
    render: (key) => [`key ${key.keyId} (${key.role}, ${key.vin}) is now ${key.state}`],
  });
}

const keys = stackCommand({
  name: 'keys',
  summary: "The server's keys of a vehicle",
  usage: `--vin <VIN> ${ADMIN}`,
  async call(stack, context) {
    const vin = vinOption(context);
    return { vin, items: await stack.vehicleKeys(vin) };
  },
  render: ({ vin, items }) =>
    items.length === 0
      ? [`no keys for ${vin}`]
      : formatTable(
          ['KEY', 'ROLE', 'STATE', 'VERSION', 'PARTNER', 'UPDATED'],
          items.map((k) => [k.keyId, k.role, k.state, String(k.version), k.partner, k.updatedAt]),
        ),
});

const timeline = stackCommand({
  name: 'timeline',
  summary: "A key's timeline: state changes and every hop of its commands to the car",
  usage: `<keyId> ${ADMIN}`,
  call: (stack, context) => stack.timeline(keyIdArgument(context)),
  render: (result) =>
    formatTable(
      ['AT', 'SOURCE', 'EVENT', 'BY / COMMAND'],
      result.entries.map((entry) => {
        const { actor, command, seq } = entry.details as { actor?: string; command?: string; seq?: number };
        return [entry.at, entry.source, entry.event, command ? `${command} #${seq}` : (actor ?? '')];
      }),
    ),
});

const auditVerify = stackCommand({
  name: 'audit verify',
  summary: "Verify the audit log's hash chains (exit 1 when a row does not match)",
  usage: ADMIN,
  async call(stack) {
    const result = await stack.verifyAudit();
    if (!result.ok) {
      throw new CliError(
        `audit chain broken: ${result.checked} rows verified before ${JSON.stringify(result.firstBroken)}`,
        1,
        result,
      );
    }
    return result;
  },
  render: (result) => [`audit log intact: ${result.checked} rows in ${result.chains} chains, head ${result.lastHash}`],
});

function onlineCommand(online: boolean) {
  const name = online ? 'online' : 'offline';
  return stackCommand<unknown>({
    name,
    summary: online
      ? "Bring a car's telematics (--vin) or a phone (--device) back in reach"
      : "Take a car's telematics (--vin) or a phone (--device) out of reach",
    usage: `(--vin <VIN> | --device <deviceId>) ${SIM}`,
    call(stack, context) {
      const deviceId = optionalString(context, 'device');
      if (deviceId !== undefined && context.options.vin !== undefined)
        throw new CliError('give --vin or --device, not both', 2);
      return deviceId !== undefined
        ? stack.setDeviceOnline(deviceId, online)
        : stack.setCarOnline(vinOption(context), online);
    },
    render: (_, context) => [
      `${typeof context.options.device === 'string' ? `device ${context.options.device}` : `car ${String(context.options.vin)}`} is ${name}`,
    ],
  });
}

const lostMode = stackCommand({
  name: 'lost-mode',
  summary: 'The phone maker suspends (on) or resumes (off) every key of a phone',
  usage: `<on|off> --device <deviceId> ${SIM}`,
  call(stack, context) {
    const [setting] = context.positionals;
    if (setting !== 'on' && setting !== 'off') throw new CliError('say "on" or "off"', 2);
    return stack.lostMode(stringOption(context, 'device'), setting === 'on');
  },
  render: (result) => [
    `lost mode ${result.lostMode ? 'on' : 'off'} for ${result.deviceId}: ${result.keys.map((k) => `${k.keyId} ${k.state}`).join(', ') || 'no keys'}`,
  ],
});

const deleteKey = stackCommand({
  name: 'delete',
  summary: 'Delete a key in the Wallet (termination attestation to the server)',
  usage: `--device <deviceId> --key <keyId> ${SIM}`,
  call: (stack, context) => stack.deleteKey(stringOption(context, 'device'), keyIdArgument(context, 'key')),
  render: (result) => [`key ${result.keyId} deleted in the Wallet; ${result.state} on the server`],
});

export const STACK_COMMANDS: CliCommand[] = [
  vehicleAdd,
  deviceAdd,
  pair,
  tap,
  share,
  lifecycle('suspend'),
  lifecycle('resume'),
  lifecycle('revoke'),
  keys,
  timeline,
  auditVerify,
  onlineCommand(true),
  onlineCommand(false),
  lostMode,
  deleteKey,
];
