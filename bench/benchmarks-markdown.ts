import { targetBound, type BenchResult } from './report.js';

/** What `npm run bench` collected: every benchmark's `--json` results and where they ran. */
export interface BenchmarksReport {
  /** ISO date of the run. */
  readonly date: string;
  readonly quick: boolean;
  readonly machine: Readonly<Record<string, string>>;
  readonly versions: Readonly<Record<string, string>>;
  readonly benchmarks: ReadonlyArray<{ readonly name: string; readonly results: readonly BenchResult[] }>;
  /** Benchmarks left out on request (`--skip`), named in the file so nothing is missing silently. */
  readonly skipped: readonly string[];
}

/** value ÷ floor, as `0.62×`; `—` without a floor. */
export function ratio(result: Pick<BenchResult, 'value' | 'floor'>): string {
  if (!Number.isFinite(result.floor) || result.floor === 0) return '—';
  return `${(result.value / result.floor).toFixed(2)}×`;
}

export function target(result: Pick<BenchResult, 'target' | 'unit'>): string {
  if (result.target === null) return '—';
  return `${targetBound(result).replace(/^([≤≥])/, '$1 ')} ${result.unit}`;
}

export function status(result: Pick<BenchResult, 'ok'>): string {
  if (result.ok === null) return '—';
  return result.ok ? 'ok' : 'miss';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** docs/BENCHMARKS.md: one table of every figure with its floor, ratio, target and ok/miss, then machine and versions. */
export function renderBenchmarks(report: BenchmarksReport): string {
  const figures = report.benchmarks.flatMap((benchmark) => benchmark.results);
  const missed = figures.filter((result) => result.ok === false).length;
  const checked = figures.filter((result) => result.ok !== null).length;
  const lines = [
    '# Benchmarks',
    '',
    `Run of \`npm run bench${report.quick ? ' -- --quick' : ''}\` on ${report.date}, on a shared and noisy machine` +
      ' (its host is shared with other machines), so figures move between runs; each floor was measured in the same run.',
    '',
    `${checked - missed} of ${checked} targets met${report.quick ? ' (quick mode: short runs, a smoke test)' : ''}.`,
    ...(report.skipped.length > 0
      ? ['', `Not run in this file (left out with \`--skip\`): ${report.skipped.join(', ')}.`]
      : []),
    '',
    '| benchmark | figure | value | floor / peer | ratio | target | status |',
    '|---|---|---:|---:|---:|---|---|',
    ...report.benchmarks
      .flatMap((benchmark) =>
        benchmark.results.map((result) =>
          [
            benchmark.name,
            cell(result.name),
            `${String(result.value)} ${result.unit}`,
            `${String(result.floor)} ${result.unit}`,
            ratio(result),
            target(result),
            status(result),
          ].join(' | '),
        ),
      )
      .map((row) => `| ${row} |`),
    '',
    'ratio = value ÷ floor (or peer). The floor is the same work done by the bare library in the same run; what',
    "each benchmark measures and why is in the README's Benchmarks section and in each script's header.",
    '',
    '## Machine',
    '',
    ...Object.entries(report.machine).map(([key, value]) => `- ${key}: ${value}`),
    '',
    '## Versions',
    '',
    ...Object.entries(report.versions).map(([key, value]) => `- ${key}: ${value}`),
    '',
  ];
  return lines.join('\n');
}
