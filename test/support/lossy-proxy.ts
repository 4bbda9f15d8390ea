import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './harness.js';

/**
 * An mTLS hop in front of the mocked Device OEM backend that loses answers: every
 * `dropEvery`-th request is passed on and acted upon, then the connection to the caller is cut
 * instead of answering — the caller tries again, a duplicate delivery. It presents the Device
 * OEM's server certificate to the caller and the caller's own client identity to the backend,
 * both from the test PKI, and verifies both sides.
 */
export class LossyProxy {
  requests = 0;
  dropped = 0;
  private readonly server: Server;
  private readonly agent: Agent;

  constructor(pki: TestPki, targetPort: number, dropEvery: number) {
    const set = pki.set;
    this.agent = new Agent({
      cert: set.serverClientCert,
      key: set.serverClientKey,
      ca: set.deviceOemCaCert,
      rejectUnauthorized: true,
      keepAlive: true,
    });
    this.server = createServer(
      {
        cert: set.deviceOemServerCert,
        key: set.deviceOemServerKey,
        ca: set.vehicleOemRootCert,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        this.requests += 1;
        const drop = dropEvery > 0 && this.requests % dropEvery === 0;
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const upstream = request(
            `https://localhost:${targetPort}${req.url}`,
            { method: req.method, agent: this.agent, headers: { 'content-type': 'application/json' } },
            (answer) => {
              const body: Buffer[] = [];
              answer.on('data', (chunk: Buffer) => body.push(chunk));
              answer.on('end', () => {
                if (drop) {
                  this.dropped += 1;
                  req.socket.destroy();
                  return;
                }
                res
                  .writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json' })
                  .end(Buffer.concat(body));
              });
            },
          );
          upstream.on('error', () => req.socket.destroy());
          upstream.end(Buffer.concat(chunks));
        });
      },
    );
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
