import { describe, expect, it } from 'vitest';
import { renderBenchmarks, type BenchmarksReport } from '../../bench/benchmarks-markdown.js';

const REPORT: BenchmarksReport = {
  date: '2026-05-17',
  quick: false,
  machine: { CPU: 'Test CPU @ 3.0GHz', cores: '2', memory: '24.0 GiB', OS: 'Debian GNU/Linux 12 (Linux 6.1)' },
  versions: { node: 'v20.19.0', PostgreSQL: '15.8', Redis: '7.0.15', typeorm: '1.1.1' },
  benchmarks: [
    {
      name: 'api',
      results: [
        { name: 'heartbeat | keep-alive', value: 3000, unit: 'req/s', floor: 4000, target: 2400, ok: true },
        { name: 'register p99', value: 30, unit: 'ms', floor: 7.5, target: 25, ok: false },
        { name: 'peak RSS', value: 200, unit: 'MiB', floor: 80, target: null, ok: null },
      ],
    },
    {
      name: 'transactions',
      results: [{ name: 'standard tx/s', value: 1200, unit: 'tx/s', floor: 0, target: 1000, ok: true }],
    },
  ],
  skipped: ['revocation'],
};

function tableRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| benchmark'))
    .map((line) =>
      line
        .slice(2, -2)
        .split(/ (?<!\\)\| /)
        .map((cell) => cell.trim()),
    );
}

describe('docs/BENCHMARKS.md writer', () => {
  const markdown = renderBenchmarks(REPORT);

  it('writes one row per figure with value, floor, ratio, target and ok/miss', () => {
    expect(tableRows(markdown)).toEqual([
      ['api', 'heartbeat \\| keep-alive', '3000 req/s', '4000 req/s', '0.75×', '≥ 2400 req/s', 'ok'],
      ['api', 'register p99', '30 ms', '7.5 ms', '4.00×', '≤ 25 ms', 'miss'],
      ['api', 'peak RSS', '200 MiB', '80 MiB', '2.50×', '—', '—'],
      ['transactions', 'standard tx/s', '1200 tx/s', '0 tx/s', '—', '≥ 1000 tx/s', 'ok'],
    ]);
  });

  it('counts the targets met and names what was left out', () => {
    expect(markdown).toContain('2 of 3 targets met.');
    expect(markdown).toContain('Not run in this file (left out with `--skip`): revocation.');
    expect(markdown).toContain('on 2026-05-17');
  });

  it('lists the machine and the versions', () => {
    expect(markdown).toContain('- CPU: Test CPU @ 3.0GHz');
    expect(markdown).toContain('- cores: 2');
    expect(markdown).toContain('- PostgreSQL: 15.8');
    expect(markdown).toContain('- typeorm: 1.1.1');
  });

  it('marks a quick run as such', () => {
    const quick = renderBenchmarks({ ...REPORT, quick: true, skipped: [] });
    expect(quick).toContain('`npm run bench -- --quick`');
    expect(quick).toContain('(quick mode: short runs, a smoke test)');
    expect(quick).not.toContain('--skip');
  });
});
