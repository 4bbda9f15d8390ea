import fastify from 'fastify';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certificateFingerprint, pkiMaterialFromSet } from '../src/config/config.js';
import { readPkiSet } from '../src/pki/dev-pki.js';

/**
 * The floor of the API benchmark: plain Fastify on the same mTLS settings as the api process
 * (same certificates, `requestCert`, `rejectUnauthorized: true`), with nothing else. Runs as its
 * own process: `node dist/bench/api-floor-server.js <pki dir>`; reports its port on stderr.
 *
 * - GET /trivial: a constant JSON body.
 * - GET /identity/per-request: parses the peer certificate and maps it to a partner on every request.
 * - GET /identity/per-socket: the same, parsed once per TLS connection (as the api's guard does).
 * - POST /partner/v1/keys: parses the JSON body and verifies the endpoint chain with node:crypto X509Certificate.
 */

interface Identity {
  status: 'ok';
  partner: string;
  certificateFingerprint: string;
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: api-floor-server <pki dir>');
  const set = readPkiSet(dir);
  const pki = pkiMaterialFromSet(set);
  const partnerFingerprint = certificateFingerprint(set.deviceOemClientCert);
  const root = new X509Certificate(pki.vehicleOemRootCertPem);

  const identityOf = (socket: TLSSocket): Identity | null => {
    const peer = socket.getPeerCertificate(true);
    const fingerprint = peer.fingerprint256?.replace(/:/g, '').toLowerCase();
    return fingerprint === partnerFingerprint
      ? { status: 'ok', partner: 'device-oem', certificateFingerprint: fingerprint }
      : null;
  };
  const cache = new WeakMap<TLSSocket, Identity | null>();

  const app = fastify({
    https: {
      key: pki.serverKeyPem,
      cert: pki.serverCertPem,
      ca: [pki.deviceOemCaCertPem, pki.vehicleOemRootCertPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
  });
  app.get('/trivial', () => ({ status: 'ok' }));
  app.get('/identity/per-request', async (request, reply) => {
    const identity = identityOf(request.raw.socket as TLSSocket);
    return identity ? { ...identity, serverTime: new Date().toISOString() } : reply.code(403).send({});
  });
  app.get('/identity/per-socket', async (request, reply) => {
    const socket = request.raw.socket as TLSSocket;
    let identity = cache.get(socket);
    if (identity === undefined) {
      identity = identityOf(socket);
      cache.set(socket, identity);
    }
    return identity ? { ...identity, serverTime: new Date().toISOString() } : reply.code(403).send({});
  });
  app.post<{ Body: { certificateChain?: unknown } }>('/partner/v1/keys', async (request, reply) => {
    const chain = request.body?.certificateChain;
    if (!Array.isArray(chain) || chain.length !== 3) return reply.code(400).send({});
    const [endpoint, instance, deviceOem] = chain.map(
      (entry) => new X509Certificate(Buffer.from(String(entry), 'base64')),
    );
    const links: Array<[X509Certificate, X509Certificate]> = [
      [endpoint, instance],
      [instance, deviceOem],
      [deviceOem, root],
    ];
    for (const [child, issuer] of links) {
      if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey)) return reply.code(422).send({});
    }
    return reply.code(201).send({ keyId: endpoint.subject });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  process.stderr.write(`floor: listening on port ${typeof address === 'object' && address ? address.port : 0}\n`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`floor: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
