import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import type { Delivery } from './delivery.entity.js';
import { COMMAND_JWS_TYPE, type TelematicsCommand } from '../protocol/telematics-messages.js';
import { signCompactJws } from '../protocol/crypto/compact-jws.js';

/** Signs commands to cars with the telematics key the cars pin (PROTOCOL.md §8). */
export class CommandSigner {
  private readonly key: KeyObject;
  readonly publicKey: KeyObject;
  private kid?: string;

  constructor(privateKeyPem: string) {
    this.key = createPrivateKey(privateKeyPem);
    this.publicKey = createPublicKey(this.key);
  }

  async keyId(): Promise<string> {
    this.kid ??= await calculateJwkThumbprint(await exportJWK(this.publicKey));
    return this.kid;
  }

  commandFor(
    vehicleIdentifier: string,
    delivery: Delivery,
    extra: Record<string, unknown> = {},
    now = Date.now(),
  ): TelematicsCommand {
    return {
      ...delivery.fields,
      ...extra,
      v: 1,
      vehicleId: vehicleIdentifier,
      seq: delivery.seq,
      cmd: delivery.command,
      keyListVersion: delivery.keyListVersion,
      iat: Math.floor(now / 1000),
    };
  }

  async sign(command: TelematicsCommand): Promise<string> {
    return signCompactJws(JSON.stringify(command), this.key, { typ: COMMAND_JWS_TYPE, kid: await this.keyId() });
  }
}
