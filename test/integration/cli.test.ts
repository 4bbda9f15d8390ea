import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_VIN, adminRequest, createTestPki, eventually } from '../support/harness.js';
import { runScript } from '../support/run-script.js';
import { SystemWithSimulator, freePort } from '../support/simulator.js';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/**
 * The built CLI (`npm run cli`) as a user runs it, against a real system and simulator: each
 * subcommand with readable and JSON output, and refusals as one line and an exit code.
 */
describe('cli', () => {
  let world: SystemWithSimulator;
  let env: NodeJS.ProcessEnv;
  const vin = TEST_VIN(81);

  const cli = (...args: string[]) => runScript('dist/src/cli/main.js', args, env);

  /** Runs a command that must succeed with --json and returns its parsed output. */
  async function json<T>(...args: string[]): Promise<T> {
    const run = await cli(...args, '--json');
    expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
    expect(run.stderr).toBe('');
    return JSON.parse(run.stdout) as T;
  }

  async function serverState(keyId: string): Promise<string> {
    const token = await world.system.operatorToken(['keys:read']);
    return (await adminRequest<{ state: string }>(world.system, 'GET', `/v1/keys/${keyId}`, { token })).body.state;
  }

  beforeAll(async () => {
    world = await SystemWithSimulator.start(await createTestPki());
    env = {
      PATH: process.env.PATH,
      PKI_DIR: world.pkiDir,
      DKS_ADMIN_URL: world.system.adminUrl,
      DKS_SIM_URL: world.controlUrl,
    };
  });

  afterAll(async () => {
    await world?.stop();
  });

  it('provisions, pairs, taps, shares, lists, suspends, resumes, revokes and verifies the audit log', async () => {
    const added = await cli('vehicle', 'add', '--vin', vin);
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toMatch(new RegExp(`^car ${vin} provisioned: vehicle identifier [0-9a-f]{16}, server id `));
    expect(world.simulator!.world.car(vin)).toBeDefined();

    const owner = await json<{ deviceId: string; name: string }>('device', 'add', '--name', 'owner');
    expect(owner.name).toBe('owner');
    const paired = await json<{ keyId: string; state: string; deviceId: string }>(
      'pair',
      '--vin',
      vin,
      '--device',
      owner.deviceId,
    );
    expect(paired).toMatchObject({ state: 'active', deviceId: owner.deviceId });
    expect(await serverState(paired.keyId)).toBe('active');

    const unlock = await cli('tap', '--device', owner.deviceId, '--vin', vin, '--action', 'unlock');
    expect(unlock.code).toBe(0);
    expect(unlock.stdout).toMatch(
      new RegExp(`^unlock: granted, standard transaction, [0-9.]+ ms in the car, key ${paired.keyId}\\n$`),
    );
    expect(world.simulator!.world.car(vin)!.car.ecuState).toMatchObject({ locked: false });
    const fast = await json<{ allowed: boolean; transaction: string }>(
      'tap',
      '--device',
      owner.deviceId,
      '--vin',
      vin,
      '--action',
      'lock',
      '--mode',
      'fast',
    );
    expect(fast).toMatchObject({ allowed: true, transaction: 'fast' });

    // No --friend: the CLI creates the friend's phone.
    const shared = await json<{ friendKeyId: string; friendDeviceId: string; profile: string }>(
      'share',
      '--device',
      owner.deviceId,
      '--key',
      paired.keyId,
      '--profile',
      'UNLOCK_ONLY',
      '--pin',
      '123456',
    );
    expect(shared.profile).toBe('UNLOCK_ONLY');
    await eventually(
      () => serverState(shared.friendKeyId),
      (state) => state === 'active',
    );
    const refused = await json<{ allowed: boolean; result: string }>(
      'tap',
      '--device',
      shared.friendDeviceId,
      '--vin',
      vin,
      '--action',
      'engine-start',
    );
    expect(refused).toMatchObject({ allowed: false, result: 'denied' });

    const listed = await cli('keys', '--vin', vin);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KEY\s+ROLE\s+STATE\s+VERSION\s+PARTNER\s+UPDATED$/);
    expect(lines[1]).toMatch(new RegExp(`^${paired.keyId}\\s+owner\\s+active\\s+\\d+\\s+device-oem\\s`));
    expect(lines[2]).toMatch(new RegExp(`^${shared.friendKeyId}\\s+friend\\s+active\\s`));
    expect(lines).toHaveLength(3);

    const suspended = await cli('suspend', paired.keyId, '--reason', 'reported stolen');
    expect(suspended.stdout).toBe(`key ${paired.keyId} (owner, ${vin}) is now suspended\n`);
    expect(await serverState(paired.keyId)).toBe('suspended');
    await eventually(
      () =>
        world
          .simulator!.world.car(vin)!
          .car.endpoints()
          .find((key) => key.keyId === paired.keyId)?.state,
      (state) => state === 'suspended',
    );
    expect((await json<{ state: string }>('resume', paired.keyId)).state).toBe('active');

    // Revoked while the car is offline: terminating until the car is back and acknowledges.
    expect((await json<{ online: boolean }>('offline', '--vin', vin)).online).toBe(false);
    const revoked = await json<{ state: string }>('revoke', shared.friendKeyId, '--reason', 'lent no more');
    expect(revoked.state).toBe('terminating');
    expect((await cli('online', '--vin', vin)).stdout).toBe(`car ${vin} is online\n`);
    await eventually(
      () => serverState(shared.friendKeyId),
      (state) => state === 'terminated',
    );

    const timeline = await cli('timeline', shared.friendKeyId);
    expect(timeline.code).toBe(0);
    expect(timeline.stdout).toMatch(/^AT\s+SOURCE\s+EVENT\s+BY \/ COMMAND\n/);
    expect(timeline.stdout).toMatch(/audit\s+key\.terminating\s+operator:cli/);
    expect(timeline.stdout).toMatch(/delivery\s+command\.acked-by-car\s+SET_STATE #\d+/);
    const entries = await json<{ entries: Array<{ event: string }> }>('timeline', shared.friendKeyId);
    expect(entries.entries.map((entry) => entry.event)).toContain('key.terminated');

    // The phone out of reach and back.
    expect((await cli('offline', '--device', owner.deviceId)).stdout).toBe(`device ${owner.deviceId} is offline\n`);
    expect(world.simulator!.world.deviceOem.isDeviceReachable(owner.deviceId)).toBe(false);
    expect((await json<{ online: boolean }>('online', '--device', owner.deviceId)).online).toBe(true);
    expect((await cli('online', '--vin', vin, '--device', owner.deviceId)).code).toBe(2);

    // Lost mode through the phone maker, then the owner deletes the key in the Wallet.
    const lost = await json<{ keys: Array<{ keyId: string; state: string }> }>(
      'lost-mode',
      'on',
      '--device',
      owner.deviceId,
    );
    expect(lost.keys).toEqual([expect.objectContaining({ keyId: paired.keyId, state: 'suspended' })]);
    expect((await cli('lost-mode', 'off', '--device', owner.deviceId)).stdout).toBe(
      `lost mode off for ${owner.deviceId}: ${paired.keyId} active\n`,
    );
    const deleted = await cli('delete', '--device', owner.deviceId, '--key', paired.keyId);
    expect(deleted.stdout).toBe(`key ${paired.keyId} deleted in the Wallet; terminating on the server\n`);

    const audit = await cli('audit', 'verify');
    expect(audit.code).toBe(0);
    expect(audit.stdout).toMatch(/^audit log intact: \d+ rows in \d+ chains, head [0-9a-f]{64}\n$/);
    expect((await json<{ ok: boolean; checked: number }>('audit', 'verify')).checked).toBeGreaterThan(5);
  });

  it('answers a refusal with one line and exit 1, the problem with --json', async () => {
    const missing = await cli('suspend', '00000000deadbeef');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: No such resource: key 00000000deadbeef does not exist\n');
    expect(missing.stdout).toBe('');

    const asJson = await cli('suspend', '00000000deadbeef', '--json');
    expect(asJson.code).toBe(1);
    const body = JSON.parse(asJson.stdout) as { error: string; problem: Problem };
    expect(body.problem).toMatchObject({
      status: 404,
      title: 'No such resource',
      type: expect.stringMatching(/not-found/),
    });

    const unknownCar = await cli('tap', '--device', 'nobody', '--vin', TEST_VIN(82), '--action', 'unlock');
    expect(unknownCar).toMatchObject({
      code: 1,
      stderr: 'error: No such resource: no device nobody in the simulator\n',
    });

    const noVehicle = await cli('keys', '--vin', TEST_VIN(83));
    expect(noVehicle).toMatchObject({
      code: 1,
      stderr: `error: No such resource: vehicle ${TEST_VIN(83)} does not exist\n`,
    });

    const badToken = await cli('keys', '--vin', vin, '--token', 'a.b.c');
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/^error: Authentication is required: .+\n$/);
  });

  it('refuses bad arguments with exit 2 and an unreachable service with exit 3 naming its URL', async () => {
    const badAction = await cli('tap', '--device', 'x', '--vin', vin, '--action', 'fly');
    expect(badAction).toMatchObject({
      code: 2,
      stderr: 'error: --action must be one of unlock, lock, engine-start, trunk; got "fly"\n',
    });
    expect((await cli('keys', '--vin', 'not-a-vin')).code).toBe(2);
    expect((await cli('pair')).stderr).toBe('error: --vin is required\n');
    const unknown = await cli('fly');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error: unknown command "fly"/);

    const port = await freePort();
    const down = await cli('keys', '--vin', vin, '--admin-url', `http://127.0.0.1:${port}`);
    expect(down.code).toBe(3);
    expect(down.stderr).toBe(
      `error: the admin API at http://127.0.0.1:${port} cannot be reached (ECONNREFUSED): start the server with "npm run up" (or "docker compose up"), or point --admin-url / DKS_ADMIN_URL at it\n`,
    );
    const simDown = await cli('vehicle', 'add', '--sim-url', `http://127.0.0.1:${port}`);
    expect(simDown.code).toBe(3);
    expect(simDown.stderr).toMatch(
      new RegExp(`^error: the simulator at http://127\\.0\\.0\\.1:${port} cannot be reached`),
    );

    const help = await cli('share', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: dks share --device <deviceId> --key <keyId> --profile/);
    const list = await cli('help');
    for (const name of [
      'vehicle add',
      'pair',
      'tap',
      'share',
      'suspend',
      'resume',
      'revoke',
      'keys',
      'timeline',
      'audit verify',
    ])
      expect(list.stdout).toContain(`\n  ${name} `);
  });
});
