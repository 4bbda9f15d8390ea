import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { auditHash, auditHashParts, GENESIS_HASH } from './audit-chain.js';

describe('auditHashParts', () => {
  it('gives the bytes auditHash covers, split around the id, for any content', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString('hex')),
        fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }),
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.string(),
        fc.option(fc.string(), { nil: null }),
        fc.date({ min: new Date(0), max: new Date('2999-12-31T00:00:00Z'), noInvalidDate: true }),
        (prevHash, id, details, action, correlationId, occurredAt) => {
          const content = {
            occurredAt,
            actor: { type: 'system', id: 'test' },
            action,
            subject: { type: 'key', id: 'k' },
            details: details as Record<string, unknown>,
            correlationId,
          };
          const { prefix, suffix } = auditHashParts(content);
          const joined = createHash('sha256')
            .update(Buffer.from(prevHash, 'hex'))
            .update(prefix)
            .update(id.toString())
            .update(suffix)
            .digest('hex');
          expect(joined).toBe(auditHash(prevHash, { ...content, id: id.toString() }));
        },
      ),
    );
    expect(
      auditHashParts({
        occurredAt: new Date(0),
        actor: { type: 'system', id: 'x' },
        action: 'a',
        subject: { type: 's', id: 'y' },
        details: {},
        correlationId: null,
      }).prefix.toString(),
    ).toMatch(/"id":"$/);
    expect(GENESIS_HASH).toHaveLength(64);
  });
});
