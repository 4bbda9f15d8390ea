import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual } from '../../src/protocol/crypto/constant-time.js';

const SRC = join(__dirname, '..', '..', 'src');

/** Names of values an attacker could recover byte by byte from how long a comparison takes. */
const SECRET_OPERAND =
  /(mac|cryptogram|evidence|fingerprint|hash|\bM[12]\b|password|verifier|\bw0\b|secret|receipt)\b/i;
/** Comparisons written without constantTimeEqual. */
const COMPARISONS: RegExp[] = [
  /([\w.$[\]()?!]+)\s*(?:===|!==|==|!=)\s*([\w.$[\]()?!'"`]+)/g,
  /([\w.$[\]()?!]+)\.equals\(([^)]*)\)/g,
  /([\w.$[\]()?!]*)\.?compare\(([^)]*)\)/g,
];
const LITERAL = /^(['"`].*|\d+|0x[0-9a-f]+|undefined|null|true|false|typeof)$/i;

/**
 * Comparisons of values that look secret by name but are not, each with why. `file` and `text`
 * (the comparison as written) must both match.
 */
const NOT_SECRET: Array<{ file: string; text: string; why: string }> = [
  { file: 'audit/audit.service.ts', text: 'row.prevHash !== prevHash', why: 'audit hashes are public (GET /v1/audit)' },
  { file: 'audit/audit.service.ts', text: 'expected !== row.hash', why: 'audit hashes are public (GET /v1/audit)' },
  {
    file: 'audit/audit.service.ts',
    text: 'head.lastHash !== result.lastHash',
    why: 'audit hashes are public (GET /v1/audit)',
  },
];

interface Finding {
  file: string;
  line: number;
  text: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

function secretComparisons(): Finding[] {
  const findings: Finding[] = [];
  for (const path of sourceFiles(SRC)) {
    const file = relative(SRC, path).split('\\').join('/');
    readFileSync(path, 'utf8')
      .split('\n')
      .forEach((source, index) => {
        const code = source.replace(/\/\/.*$/, '').replace(/'[^']*'|`[^`]*`/g, "'…'");
        for (const pattern of COMPARISONS) {
          for (const match of code.matchAll(pattern)) {
            const operands = [match[1], match[2]].map((operand) => operand.trim());
            if (operands.some((operand) => LITERAL.test(operand) || operand === '')) continue;
            if (!operands.some((operand) => SECRET_OPERAND.test(operand))) continue;
            // Lengths are fixed by the protocol, not secret.
            if (operands.some((operand) => /\.(length|size)$/.test(operand))) continue;
            if (NOT_SECRET.some((entry) => entry.file === file && match[0].includes(entry.text))) continue;
            findings.push({ file, line: index + 1, text: match[0] });
          }
        }
      });
  }
  return findings;
}

describe('constant-time comparisons of secrets', () => {
  it('compares MACs, cryptograms, evidences, fingerprints and request hashes only with constantTimeEqual', () => {
    expect(secretComparisons()).toEqual([]);
  });

  it('the scan sees a comparison with === or equals on a secret-named value', () => {
    const pattern = COMPARISONS[0];
    expect([...'if (mac === expectedMac) return'.matchAll(pattern)]).toHaveLength(1);
    expect([...'if (cryptogram.equals(other)) return'.matchAll(COMPARISONS[1])]).toHaveLength(1);
    const [before] = [...'if (existing.requestHash !== requestHash) {'.matchAll(pattern)];
    expect(before[0]).toContain('existing.requestHash !== requestHash');
    expect(SECRET_OPERAND.test('existing.requestHash')).toBe(true);
    expect(SECRET_OPERAND.test('issuerFingerprint')).toBe(true);
  });

  it('every allow-list entry still names a comparison in the source (none is stale)', () => {
    for (const entry of NOT_SECRET) {
      expect(readFileSync(join(SRC, entry.file), 'utf8'), entry.file).toContain(entry.text);
    }
  });

  it('constantTimeEqual: equal bytes and text compare true, different or different-length compare false', () => {
    expect(constantTimeEqual(Buffer.from('abcd'), Buffer.from('abcd'))).toBe(true);
    expect(constantTimeEqual('a1b2', 'a1b2')).toBe(true);
    expect(constantTimeEqual('a1b2', 'a1b3')).toBe(false);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd'))).toBe(false);
  });
});
