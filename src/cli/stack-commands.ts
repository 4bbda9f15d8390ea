import { CliError, formatTable, stringOption, type CliCommand, type CommandContext } from './cli-framework.js';
import { ACTIONS, Stack, describeTap, randomVin, stackOptions, type TapAction } from './stack.js';

const CONNECTION = '[--admin-url <url>] [--sim-url <url>] [--token <jwt>] [--json]';
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

function optionalString(context: CommandContext, name: string): string | undefined {
  const value = context.options[name];
  if (value === true) throw new CliError(`--${name} needs a value`, 2);
  return typeof value === 'string' ? value : undefined;
}

const vehicleAdd: CliCommand = {
  name: 'vehicle add',
  summary: 'Provision a car in the simulator with the server (a random VIN unless --vin)',
  usage: `vehicle add [--vin <VIN>] ${CONNECTION}`,
  async run(context) {
    const car = await stackOf(context).provisionCar(vinOption(context, randomVin()));
    if (!context.json) {
      context.out(
        `car ${car.vin} provisioned: vehicle identifier ${car.vehicleIdentifier}, server id ${car.vehicleId}`,
      );
    }
    return car;
  },
};

const deviceAdd: CliCommand = {
  name: 'device add',
  summary: 'Create a phone in the simulator (software SE, signed in with the Device OEM backend)',
  usage: `device add [--name <name>] ${CONNECTION}`,
  async run(context) {
    const device = await stackOf(context).createDevice(optionalString(context, 'name'));
    if (!context.json) context.out(`device ${device.deviceId} created${device.name ? ` (${device.name})` : ''}`);
    return device;
  },
};

const pair: CliCommand = {
  name: 'pair',
  summary: 'Owner pairing: the operator starts a session, the phone pairs at the car; prints the key id',
  usage: `pair --vin <VIN> [--device <deviceId>] ${CONNECTION}`,
  async run(context) {
    const stack = stackOf(context);
    const vin = vinOption(context);
    const deviceId = optionalString(context, 'device') ?? (await stack.createDevice('owner')).deviceId;
    const paired = await stack.pair(vin, deviceId);
    if (!context.json) context.out(`paired: key ${paired.keyId} on device ${deviceId} for ${vin}, ${paired.state}`);
    return paired;
  },
};

const tap: CliCommand = {
  name: 'tap',
  summary: "Hold a phone to the car's reader; prints the car's decision",
  usage: `tap --device <deviceId> --vin <VIN> --action <${ACTIONS.join('|')}> [--mode fast|standard] ${CONNECTION}`,
  async run(context) {
    const deviceId = stringOption(context, 'device');
    const vin = vinOption(context);
    const action = choice<TapAction>(context, 'action', ACTIONS);
    const mode = context.options.mode === undefined ? undefined : choice(context, 'mode', ['fast', 'standard']);
    const outcome = await stackOf(context).tap(deviceId, vin, action, mode);
    if (!context.json)
      context.out(`${action}: ${describeTap(outcome)}${outcome.keyId ? `, key ${outcome.keyId}` : ''}`);
    return outcome;
  },
};

const share: CliCommand = {
  name: 'share',
  summary: "Share a key with a friend's phone through the Device OEM's invitation relay",
  usage: `share --device <deviceId> --key <keyId> --profile <access profile> [--friend <deviceId>] [--pin <6 digits>] ${CONNECTION}`,
  async run(context) {
    const stack = stackOf(context);
    const deviceId = stringOption(context, 'device');
    const keyId = keyIdArgument(context, 'key');
    const profile = stringOption(context, 'profile');
    const pin = optionalString(context, 'pin');
    if (pin !== undefined && !/^[0-9]{6}$/.test(pin)) throw new CliError('--pin must be 6 digits', 2);
    const friendDeviceId = optionalString(context, 'friend') ?? (await stack.createDevice('friend')).deviceId;
    const shared = await stack.share(deviceId, { keyId, friendDeviceId, profile, ...(pin ? { pin } : {}) });
    if (!context.json) {
      context.out(
        `shared: friend key ${shared.friendKeyId} (${profile}) on device ${friendDeviceId}, ${shared.state} on the server`,
      );
    }
    return shared;
  },
};

function lifecycle(name: 'suspend' | 'resume' | 'revoke'): CliCommand {
  const operation = name === 'revoke' ? 'terminate' : name;
  return {
    name,
    summary: `${name[0].toUpperCase()}${name.slice(1)} a key as the operator (the car is told over telematics)`,
    usage: `${name} <keyId> [--reason <text>] [--admin-url <url>] [--token <jwt>] [--json]`,
    async run(context) {
      const key = await stackOf(context).keyAction(
        keyIdArgument(context),
        operation,
        optionalString(context, 'reason'),
      );
      if (!context.json) context.out(`key ${key.keyId} (${key.role}, ${key.vin}) is now ${key.state}`);
      return key;
    },
  };
}

const keys: CliCommand = {
  name: 'keys',
  summary: "The server's keys of a vehicle",
  usage: 'keys --vin <VIN> [--admin-url <url>] [--token <jwt>] [--json]',
  async run(context) {
    const vin = vinOption(context);
    const items = await stackOf(context).vehicleKeys(vin);
    if (!context.json) {
      if (items.length === 0) context.out(`no keys for ${vin}`);
      else {
        const rows = items.map((k) => [k.keyId, k.role, k.state, String(k.version), k.partner, k.updatedAt]);
        for (const line of formatTable(['KEY', 'ROLE', 'STATE', 'VERSION', 'PARTNER', 'UPDATED'], rows))
          context.out(line);
      }
    }
    return { vin, items };
  },
};

const timeline: CliCommand = {
  name: 'timeline',
  summary: "A key's timeline: state changes and every hop of its commands to the car",
  usage: 'timeline <keyId> [--admin-url <url>] [--token <jwt>] [--json]',
  async run(context) {
    const result = await stackOf(context).timeline(keyIdArgument(context));
    if (!context.json) {
      const rows = result.entries.map((entry) => {
        const { actor, command, seq } = entry.details as { actor?: string; command?: string; seq?: number };
        const about = command ? `${command} #${seq}` : (actor ?? '');
        return [entry.at, entry.source, entry.event, about];
      });
      for (const line of formatTable(['AT', 'SOURCE', 'EVENT', 'BY / COMMAND'], rows)) context.out(line);
    }
    return result;
  },
};

const auditVerify: CliCommand = {
  name: 'audit verify',
  summary: "Verify the audit log's hash chains (exit 1 when a row does not match)",
  usage: 'audit verify [--admin-url <url>] [--token <jwt>] [--json]',
  async run(context) {
    const result = await stackOf(context).verifyAudit();
    if (!result.ok) {
      throw new CliError(
        `audit chain broken: ${result.checked} rows verified before ${JSON.stringify(result.firstBroken)}`,
        1,
        result,
      );
    }
    if (!context.json) {
      context.out(`audit log intact: ${result.checked} rows in ${result.chains} chains, head ${result.lastHash}`);
    }
    return result;
  },
};

function onlineCommand(online: boolean): CliCommand {
  const name = online ? 'online' : 'offline';
  return {
    name,
    summary: online
      ? "Bring a car's telematics (--vin) or a phone (--device) back in reach"
      : "Take a car's telematics (--vin) or a phone (--device) out of reach",
    usage: `${name} (--vin <VIN> | --device <deviceId>) [--sim-url <url>] [--json]`,
    async run(context) {
      const stack = stackOf(context);
      const deviceId = optionalString(context, 'device');
      if (deviceId !== undefined && context.options.vin !== undefined)
        throw new CliError('give --vin or --device, not both', 2);
      if (deviceId !== undefined) {
        const device = await stack.setDeviceOnline(deviceId, online);
        if (!context.json) context.out(`device ${deviceId} is ${name}`);
        return device;
      }
      const car = await stack.setCarOnline(vinOption(context), online);
      if (!context.json) context.out(`car ${car.vin} is ${name}`);
      return car;
    },
  };
}

const lostMode: CliCommand = {
  name: 'lost-mode',
  summary: 'The phone maker suspends (on) or resumes (off) every key of a phone',
  usage: 'lost-mode <on|off> --device <deviceId> [--sim-url <url>] [--json]',
  async run(context) {
    const [setting] = context.positionals;
    if (setting !== 'on' && setting !== 'off') throw new CliError('say "on" or "off"', 2);
    const result = await stackOf(context).lostMode(stringOption(context, 'device'), setting === 'on');
    if (!context.json) {
      context.out(
        `lost mode ${setting} for ${result.deviceId}: ${result.keys.map((k) => `${k.keyId} ${k.state}`).join(', ') || 'no keys'}`,
      );
    }
    return result;
  },
};

const deleteKey: CliCommand = {
  name: 'delete',
  summary: 'Delete a key in the Wallet (termination attestation to the server)',
  usage: 'delete --device <deviceId> --key <keyId> [--sim-url <url>] [--json]',
  async run(context) {
    const result = await stackOf(context).deleteKey(stringOption(context, 'device'), keyIdArgument(context, 'key'));
    if (!context.json) context.out(`key ${result.keyId} deleted in the Wallet; ${result.state} on the server`);
    return result;
  },
};

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
