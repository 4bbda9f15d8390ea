import { Inject, Injectable, SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../../config/config.tokens.js';
import type { AppConfig } from '../../config/config.js';
import { clientCertificateRefusal } from '../../pki/client-certificate.js';
import { constantTimeEqual } from '../../protocol/crypto/constant-time.js';
import { Vehicle } from '../../vehicles/vehicle.entity.js';
import { ProblemException } from '../errors/problem.js';
import { RateLimiter } from '../rate-limit/rate-limiter.js';
import type { Principal, PrincipalKind } from './principal.js';
import { BoundedCache } from '../cache/bounded-cache.js';

const PRINCIPAL_KIND_KEY = 'principal-kind';

/** The one kind of mTLS principal a route group accepts. */
export const RequirePrincipal = (kind: PrincipalKind) => SetMetadata(PRINCIPAL_KIND_KEY, kind);

export interface MtlsRequest extends FastifyRequest {
  principal?: Principal;
}

function normaliseFingerprint(colonHex: string): string {
  return colonHex.replace(/:/g, '').toLowerCase();
}

/** Certificates whose refusal verdict is remembered; the least recently seen is forgotten first. */
const REMEMBERED_CERTIFICATES = 10_000;
const refusals = new BoundedCache<string, string | undefined>(REMEMBERED_CERTIFICATES);

/**
 * `clientCertificateRefusal` of a certificate, by its SHA-256 fingerprint: the verdict depends on
 * the DER alone, and parsing it (ASN.1 in JavaScript, milliseconds) once per certificate rather
 * than once per TLS connection keeps new connections of the same client cheap.
 */
function refusalOf(fingerprint: string, der: Buffer): string | undefined {
  return refusals.getOrCreate(fingerprint, () => clientCertificateRefusal(der));
}

/**
 * Maps the TLS client certificate to a principal. TLS has already rejected unknown issuers
 * (`rejectUnauthorized: true`); this decides *who* the caller is. The answer is cached on the
 * socket, so a keep-alive connection parses its certificate once, not per request; once known,
 * a request on that connection is decided without waiting on a promise.
 */
@Injectable()
export class MtlsPrincipalGuard implements CanActivate {
  private readonly cache = new WeakMap<TLSSocket, Promise<Principal | string>>();
  /** The settled answers of `cache`, by the same socket. */
  private readonly settled = new WeakMap<TLSSocket, Principal | string>();
  /** The principal kind each route requires (controller, then handler), read from metadata once. */
  private readonly requiredKinds = new WeakMap<object, Map<object, PrincipalKind | undefined>>();
  private readonly partners: Map<string, string>;
  private readonly vehicleRootFingerprint: string;

  constructor(
    private readonly reflector: Reflector,
    private readonly dataSource: DataSource,
    private readonly rateLimiter: RateLimiter,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.partners = new Map(config.partners.map((entry) => [entry.fingerprint, entry.name]));
    this.vehicleRootFingerprint = normaliseFingerprint(
      new X509Certificate(config.pki.vehicleOemRootCertPem).fingerprint256,
    );
  }

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const required = this.requiredKind(context);
    const http = context.switchToHttp();
    const request = http.getRequest<MtlsRequest>();
    const reply = http.getResponse<FastifyReply>();
    const socket = request.raw.socket as TLSSocket;
    const known = this.settled.get(socket);
    if (known !== undefined) return this.admit(known, required, request, reply);
    return this.principalOf(socket).then((principal) => this.admit(principal, required, request, reply));
  }

  /** The principal of the connection, or why it has none. */
  principalOf(socket: TLSSocket): Promise<Principal | string> {
    let cached = this.cache.get(socket);
    if (!cached) {
      const resolving = this.resolve(socket);
      cached = resolving;
      this.cache.set(socket, resolving);
      resolving.then(
        (principal) => {
          if (this.cache.get(socket) === resolving) this.settled.set(socket, principal);
        },
        // A database hiccup must not pin a wrong answer to a long-lived connection.
        () => this.cache.delete(socket),
      );
    }
    return cached;
  }

  private admit(
    principal: Principal | string,
    required: PrincipalKind | undefined,
    request: MtlsRequest,
    reply: FastifyReply,
  ): boolean | Promise<boolean> {
    if (typeof principal === 'string') throw new ProblemException('forbidden', principal);
    if (!required || principal.kind !== required) {
      throw new ProblemException('forbidden', `this route is not for ${principal.kind} certificates`);
    }
    if (principal.kind === 'partner') {
      const spending = this.rateLimiter.enforce('partner', principal.partner, reply);
      if (spending) {
        return spending.then(() => {
          request.principal = principal;
          return true;
        });
      }
    }
    request.principal = principal;
    return true;
  }

  private requiredKind(context: ExecutionContext): PrincipalKind | undefined {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.requiredKinds.get(controller);
    if (!byHandler) {
      byHandler = new Map();
      this.requiredKinds.set(controller, byHandler);
    }
    if (byHandler.has(handler)) return byHandler.get(handler);
    const required = this.reflector.getAllAndOverride<PrincipalKind | undefined>(PRINCIPAL_KIND_KEY, [
      handler,
      controller,
    ]);
    byHandler.set(handler, required);
    return required;
  }

  private async resolve(socket: TLSSocket): Promise<Principal | string> {
    const unregistered = 'the client certificate is not registered here';
    if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return unregistered;
    const peer = socket.getPeerCertificate(true);
    if (!peer || !peer.fingerprint256 || !peer.raw) return unregistered;
    const fingerprint = normaliseFingerprint(peer.fingerprint256);
    const refusal = refusalOf(fingerprint, peer.raw);
    if (refusal) return refusal;
    const partner = this.partners.get(fingerprint);
    if (partner) return { kind: 'partner', partner, fingerprint };
    const issuer = peer.issuerCertificate;
    if (
      !issuer?.fingerprint256 ||
      !constantTimeEqual(normaliseFingerprint(issuer.fingerprint256), this.vehicleRootFingerprint)
    )
      return unregistered;
    const vehicle = await this.dataSource
      .getRepository(Vehicle)
      .findOne({ where: { certificateFingerprint: fingerprint }, select: { id: true, vin: true } });
    return vehicle ? { kind: 'vehicle', vehicleId: vehicle.id, vin: vehicle.vin, fingerprint } : unregistered;
  }
}
