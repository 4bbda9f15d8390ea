import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TelematicsRejection, type TelematicsUnit } from './telematics-unit.js';

const MAX_BODY = 64 * 1024;

export interface TelematicsEndpointOptions {
  certPem: string;
  keyPem: string;
  host?: string;
  port?: number;
  /**
   * Resolve a car by the path `/vehicles/<id>/commands`, where `id` is the 16-hex vehicle
   * identifier or the VIN (17 characters): a car's telematics URL is registered at provisioning,
   * before the server has issued its identifier.
   */
  unitFor: (vehicleIdentifierOrVin: string) => TelematicsUnit | undefined;
  /** A car that is "offline" makes its endpoint drop the connection. */
  isOnline?: (vehicleIdentifierOrVin: string) => boolean;
  /** Called after a car answered a command (applied or acknowledged again). */
  onCommand?: (vehicleIdentifierOrVin: string) => void;
}

const PATH = /^\/vehicles\/([0-9a-f]{16}|[A-HJ-NPR-Z0-9]{17})\/commands$/;

/**
 * HTTPS endpoint of simulated cars' telematics units: `POST /vehicles/<id or VIN>/commands` with
 * `{ command: <JWS> }` → `{ ack: <JWS> }`. An offline car's connection is destroyed, as a car
 * out of coverage would never answer.
 */
export class TelematicsEndpoint {
  private readonly server: Server;

  constructor(private readonly options: TelematicsEndpointOptions) {
    this.server = createServer({ cert: options.certPem, key: options.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
      const match = PATH.exec(req.url ?? '');
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || !match) return send(404, { error: 'not found' });
      const id = match[1];
      if (this.options.isOnline && !this.options.isOnline(id)) {
        req.socket.destroy();
        return;
      }
      const unit = this.options.unitFor(id);
      if (!unit) return send(404, { error: 'unknown vehicle' });
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) req.destroy();
        else chunks.push(chunk);
      });
      req.on('end', () => {
        let command: unknown;
        try {
          command = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { command?: unknown }).command;
        } catch {
          return send(400, { error: 'body must be JSON' });
        }
        if (typeof command !== 'string') return send(400, { error: 'command must be a compact JWS' });
        unit.receive(command).then(
          (ack) => {
            send(200, { ack });
            this.options.onCommand?.(id);
          },
          (error: unknown) =>
            send(error instanceof TelematicsRejection ? 400 : 500, {
              error: error instanceof Error ? error.message : 'failed',
            }),
        );
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) =>
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', resolve),
    );
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
