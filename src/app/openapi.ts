import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { ProblemResponse, problemResponse } from '../common/errors/api-problems.decorator.js';

const DESCRIPTION = `Automaker digital car key server.

Three doors:
- **Operator API** (admin listener, port 8080): bearer tokens (ES256) with scopes
  \`vehicles:write\`, \`keys:read\`, \`keys:write\`, \`audit:read\`. Get one with
  \`npm run cli -- token --scopes keys:read,keys:write\` and paste it under *Authorize*.
- **Partner API** (port 8443, mutual TLS): Device OEM backends, identified by the SHA-256
  fingerprint of their client certificate.
- **Vehicle API** (port 8443, mutual TLS): cars, identified by the certificate this server issued.

Errors are RFC 9457 \`application/problem+json\` with a stable \`type\`. Each partner and each
operator token subject has a request budget shared by all replicas: past it, 429 with \`Retry-After\`. POSTs that
document an \`Idempotency-Key\` header accept it: the same key and body returns the stored response, a different body
422, a concurrent duplicate 409.`;

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value as Record<string, unknown>)
      .sort()
      .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
  );
}

/** Operator and partner operations spend the caller's request budget (RateLimiter); vehicle ones do not. */
function documentRateLimits(document: OpenAPIObject): void {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const operation of Object.values(item as Record<string, { security?: object[]; responses?: object }>)) {
      if (typeof operation !== 'object' || !operation.responses) continue;
      const operator = operation.security?.some((requirement) => 'operator' in requirement) ?? false;
      if (operator || path.startsWith('/partner/')) {
        (operation.responses as Record<string, unknown>)['429'] = problemResponse(429);
      }
    }
  }
}

/** One document for both listeners: operator routes from the admin app, partner and vehicle routes from the mTLS app. */
export function buildOpenApiDocument(admin: INestApplication, api: INestApplication, version: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setOpenAPIVersion('3.1.0')
    .setTitle('digital-key-server')
    .setDescription(DESCRIPTION)
    .setVersion(version)
    .setLicense('Apache-2.0', 'https://www.apache.org/licenses/LICENSE-2.0')
    .addServer('http://127.0.0.1:8080', 'Admin listener (operator API)')
    .addServer('https://localhost:8443', 'mTLS listener (partner and vehicle APIs)')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT (ES256)' }, 'operator')
    .addSecurity('mtls', {
      type: 'mutualTLS' as 'http',
      description: 'TLS client certificate: Device OEM (partner routes) or vehicle certificate (vehicle routes).',
    })
    .build();
  const options = {
    extraModels: [ProblemResponse],
    operationIdFactory: (controller: string, method: string) => `${controller.replace(/Controller$/, '')}_${method}`,
  };
  const adminDocument = SwaggerModule.createDocument(admin, config, options);
  const apiDocument = SwaggerModule.createDocument(api, config, options);
  const merged: OpenAPIObject = {
    ...adminDocument,
    paths: { ...adminDocument.paths, ...apiDocument.paths },
    components: {
      ...adminDocument.components,
      schemas: { ...adminDocument.components?.schemas, ...apiDocument.components?.schemas },
    },
  };
  documentRateLimits(merged);
  return sortKeys(merged) as OpenAPIObject;
}
