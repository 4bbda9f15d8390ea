// Runs every test tier with Vitest and ends with the one plain summary line CI reads:
// "N passed, N failed". Extra arguments are passed to Vitest (e.g. a file filter).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'dks-test-'));
const report = join(dir, 'report.json');
const args = [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const child = spawn('npx', args, { stdio: 'inherit', env: process.env });
child.on('exit', (code, signal) => {
  let passed = 0;
  let failed = 0;
  try {
    const totals = JSON.parse(readFileSync(report, 'utf8'));
    passed = totals.numPassedTests;
    failed = totals.numFailedTests + (totals.numRuntimeErrorTestSuites ?? 0);
    if (totals.numFailedTestSuites > 0 && failed === 0) failed = totals.numFailedTestSuites;
  } catch {
    failed = Math.max(failed, 1);
  }
  rmSync(dir, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code === 0 && failed === 0 ? 0 : code || 1);
});
