import { createServer, request, Agent, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** One call the mocked Device OEM backend made or received, for tests and the demo. */
export interface DeviceOemCall {
  direction: 'outbound' | 'inbound';
  method: string;
  path: string;
  status: number;
  at: string;
  durationMs: number;
  /** Client certificate subject of an inbound call. */
  peer?: string;
}

export interface DeviceOemBackendOptions {
  /** TLS identity of the backend's own server (port 9443). */
  serverCertPem: string;
  serverKeyPem: string;
  /** Client certificate it presents to the Vehicle OEM server (allow-listed there). */
  clientCertPem: string;
  clientKeyPem: string;
  /** Trust anchor for the Vehicle OEM server's TLS certificate and its notification client certificate. */
  vehicleOemRootPem: string;
  /** Base URL of the Vehicle OEM server's mTLS listener, from configuration only. */
  vehicleOemBaseUrl: string;
  host?: string;
  port?: number;
}

export interface PartnerResponse<T> {
  status: number;
  body: T;
}

/** What a phone sends its maker's backend to register ("track") a new owner key (§3.4). */
export interface KeyRegistrationRequest {
  /** 8-byte vehicle identifier, hex. */
  vehicleId: string;
  role: 'owner';
  /** DER: endpoint, Instance CA, Device OEM CA cross-signed by the Vehicle OEM root (§2). */
  certificateChain: readonly Uint8Array[];
  deviceMetadata?: { deviceType?: string; model?: string; osVersion?: string };
}

/** The Vehicle OEM server's answer: the key as it tracks it, and the KTS receipt for the car. */
export interface KeyRegistration {
  keyId: string;
  vehicleId: string;
  role: string;
  state: string;
  ktsReceipt: { issuedAtMs: number; signature: string; encoded: string };
}

/** The key as the Vehicle OEM server reports it to its partner. */
export interface PartnerKey {
  keyId: string;
  vehicleId: string;
  role: string;
  state: string;
}

/** The Vehicle OEM server refused a partner call; `problem` is its problem+json body. */
export class PartnerCallError extends Error {
  override readonly name = 'PartnerCallError';

  constructor(
    readonly status: number,
    readonly problem: unknown,
  ) {
    const detail = (problem as { detail?: unknown } | null)?.detail;
    super(`the Vehicle OEM server answered ${status}${typeof detail === 'string' ? `: ${detail}` : ''}`);
  }
}

const MAX_BODY = 64 * 1024;

/**
 * The mocked Device OEM (phone maker) backend: calls the Vehicle OEM server over mTLS with its
 * client certificate, serves its own mTLS endpoint for notifications from the Vehicle OEM
 * server, and logs every call both ways. TLS verification is on in both directions.
 */
export class DeviceOemBackend {
  readonly calls: DeviceOemCall[] = [];
  readonly notifications: unknown[] = [];
  private readonly agent: Agent;
  private readonly server: Server;

  constructor(private readonly options: DeviceOemBackendOptions) {
    this.agent = new Agent({
      cert: options.clientCertPem,
      key: options.clientKeyPem,
      ca: options.vehicleOemRootPem,
      rejectUnauthorized: true,
      keepAlive: true,
    });
    this.server = createServer(
      {
        cert: options.serverCertPem,
        key: options.serverKeyPem,
        ca: options.vehicleOemRootPem,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      (req, res) => this.handle(req, res),
    );
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) =>
      this.server.listen(this.options.port ?? 9443, this.options.host ?? '127.0.0.1', resolve),
    );
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Registers a device's owner key with the Vehicle OEM server (`POST /partner/v1/keys`, §3.4). */
  async registerKey(request: KeyRegistrationRequest): Promise<KeyRegistration> {
    const response = await this.call<KeyRegistration>('POST', '/partner/v1/keys', {
      vehicleId: request.vehicleId,
      role: request.role,
      certificateChain: request.certificateChain.map((der) => Buffer.from(der).toString('base64')),
      ...(request.deviceMetadata ? { deviceMetadata: request.deviceMetadata } : {}),
    });
    if (response.status !== 201) throw new PartnerCallError(response.status, response.body);
    return response.body;
  }

  /** The key's state as the Vehicle OEM server tracks it (`GET /partner/v1/keys/{keyId}`). */
  async getKey(keyId: string): Promise<PartnerKey> {
    if (!/^[0-9a-f]{12,16}$/.test(keyId)) throw new RangeError('keyId must be 12-16 lower-case hex digits');
    const response = await this.call<PartnerKey>('GET', `/partner/v1/keys/${keyId}`);
    if (response.status !== 200) throw new PartnerCallError(response.status, response.body);
    return response.body;
  }

  /** Calls the Vehicle OEM server's partner API. */
  call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<PartnerResponse<T>> {
    const started = Date.now();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.options.vehicleOemBaseUrl),
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            this.calls.push({
              direction: 'outbound',
              method,
              path,
              status,
              at: new Date(started).toISOString(),
              durationMs: Date.now() - started,
            });
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status, body: parsed as T });
          });
        },
      );
      req.on('error', (error) => {
        this.calls.push({
          direction: 'outbound',
          method,
          path,
          status: 0,
          at: new Date(started).toISOString(),
          durationMs: Date.now() - started,
        });
        reject(error);
      });
      req.end(payload);
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const peer = (req.socket as TLSSocket).getPeerCertificate?.()?.subject?.CN;
    const finish = (status: number, body: unknown) => {
      this.calls.push({
        direction: 'inbound',
        method: req.method ?? '',
        path: req.url ?? '',
        status,
        at: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        peer: typeof peer === 'string' ? peer : undefined,
      });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/notifications') return finish(404, { error: 'not found' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        this.notifications.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        finish(202, { accepted: true });
      } catch {
        finish(400, { error: 'body must be JSON' });
      }
    });
  }
}
