// Owns: the output — one row per scenario metric (medians), ratios regmirror ÷ distribution and
// regmirror ÷ nginx, printed as a table, and written as bench/results.json and bench/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import type { TargetName } from './targets.js';

export interface Row {
  metric: string;
  unit: string;
  /** Which way is better, so a reader knows whether a ratio above 1 is good. */
  better: 'lower' | 'higher';
  values: Partial<Record<TargetName, number>>;
  note?: string;
  /** The issue's goal for this row, on regmirror's own figure or on one of its ratios. */
  goal?: Goal;
}

export interface Goal {
  /** `rm auto/nginx auto`: regmirror with http.workers auto ÷ nginx with worker_processes auto (same worker count). */
  of: 'regmirror' | 'rm/dist' | 'rm/nginx' | 'rm auto/nginx auto';
  min?: number;
  max?: number;
  /** A second condition that must hold as well (manifests: ≥ 10× distribution and ≥ 0.25× nginx). */
  also?: Goal;
}

export interface Report {
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; dockerRegistry: string; nginx: string };
  command: string;
  timestamp: string;
  settings: Record<string, unknown>;
  /** ratioVsNginx: ÷ nginx with one worker (regmirror serves on one core); ratioVsNginxAuto: ÷ nginx with a worker per core. */
  rows: Array<Row & { ratioVsDistribution: number | null; ratioVsNginx: number | null; ratioVsNginxAuto: number | null; ratioAutoVsNginxAuto: number | null; goalMet?: boolean }>;
}

type ReportRow = Report['rows'][number];

function goalValue(r: ReportRow, goal: Goal): number | null | undefined {
  if (goal.of === 'rm/dist') return r.ratioVsDistribution;
  if (goal.of === 'rm/nginx') return r.ratioVsNginx;
  if (goal.of === 'rm auto/nginx auto') return r.ratioAutoVsNginxAuto;
  return r.values.regmirror;
}

function goalHolds(r: ReportRow, goal: Goal): boolean {
  const v = goalValue(r, goal);
  if (v === null || v === undefined || !Number.isFinite(v)) return false;
  return (goal.min === undefined || v >= goal.min) && (goal.max === undefined || v <= goal.max) && (!goal.also || goalHolds(r, goal.also));
}

function goalText(goal: Goal): string {
  const bound = goal.min !== undefined ? `≥ ${fmt(goal.min)}` : `≤ ${fmt(goal.max)}`;
  return `${goal.of} ${bound}${goal.also ? `, ${goalText(goal.also)}` : ''}`;
}

function versionOf(command: string, args: string[]): string {
  // nginx -v prints to stderr, docker-registry --version to stdout: take whichever has text.
  const r = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 });
  return (r.stdout.trim() || r.stderr.trim() || r.error?.message) ?? 'unknown';
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  if (Math.abs(v) >= 100) return v.toFixed(1);
  return v.toFixed(digits);
}

export function buildReport(rows: readonly Row[], settings: Record<string, unknown>): Report {
  const cpu = cpus()[0]?.model ?? 'unknown';
  return {
    machine: {
      cpu,
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      dockerRegistry: versionOf('/usr/bin/docker-registry', ['--version']),
      nginx: versionOf('/usr/sbin/nginx', ['-v']),
    },
    command: `${['BENCH_SMOKE', 'BENCH_RUNS', 'BENCH_BIG', 'BENCH_AUTH', 'BENCH_PROF']
      .filter((k) => process.env[k] !== undefined)
      .map((k) => `${k}=${process.env[k] ?? ''} `)
      .join('')}npm run bench`,
    timestamp: new Date().toISOString(),
    settings,
    rows: rows.map((r) => {
      const row: ReportRow = {
        ...r,
        ratioVsDistribution: ratio(r.values.regmirror, r.values.distribution),
        ratioVsNginx: ratio(r.values.regmirror, r.values.nginx),
        ratioVsNginxAuto: ratio(r.values.regmirror, r.values['nginx-auto']),
        ratioAutoVsNginxAuto: ratio(r.values['regmirror-auto'], r.values['nginx-auto']),
      };
      return r.goal ? { ...row, goalMet: goalHolds(row, r.goal) } : row;
    }),
  };
}

const HEADER = ['metric', 'unit', 'better', 'regmirror', 'regmirror auto', 'distribution', 'nginx', 'nginx auto', 'rm/dist', 'rm/nginx', 'rm/nginx auto', 'rm auto/nginx auto', 'goal'];
const GOAL_COLUMN = HEADER.length - 1;

function cells(r: ReportRow): string[] {
  return [
    r.metric,
    r.unit,
    r.better,
    fmt(r.values.regmirror),
    fmt(r.values['regmirror-auto']),
    fmt(r.values.distribution),
    fmt(r.values.nginx),
    fmt(r.values['nginx-auto']),
    fmt(r.ratioVsDistribution),
    fmt(r.ratioVsNginx),
    fmt(r.ratioVsNginxAuto),
    fmt(r.ratioAutoVsNginxAuto),
    r.goal ? `${goalText(r.goal)}: ${goalValue(r, r.goal) == null || !Number.isFinite(goalValue(r, r.goal)) ? 'no figure' : r.goalMet ? 'met' : 'SHORT'}` : '',
  ];
}

export function table(report: Report): string {
  const lines = [HEADER, ...report.rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const pad = (l: string[]) => l.map((c, i) => (i < 3 || i === GOAL_COLUMN ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [pad(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.slice(1).map(pad)].join('\n');
}

export function markdown(report: Report): string {
  const m = report.machine;
  const rows = report.rows.map((r) => `| ${cells(r).join(' | ')} |`);
  const notes = report.rows.filter((r) => r.note).map((r) => `- **${r.metric}**: ${r.note ?? ''}`);
  return [
    '# regmirror benchmark results',
    '',
    `Generated by \`${report.command}\` at ${report.timestamp}. Medians of ${String(report.settings.runs)} run(s); ` +
      '"rm/dist", "rm/nginx" and "rm/nginx auto" are regmirror ÷ distribution, ÷ nginx with one worker (the same core count ' +
      'as regmirror) and ÷ nginx with `worker_processes auto`; "regmirror auto" runs with `http.workers: auto` (one worker per ' +
      'core, as nginx auto) and "rm auto/nginx auto" compares the two (see "better" for which way is good).',
    '',
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map((_, i) => (i < 3 || i === GOAL_COLUMN ? '---' : '---:')).join('|')}|`,
    ...rows,
    '',
    `Goals (issue 5): ${report.rows.filter((r) => r.goalMet).length} of ${report.rows.filter((r) => r.goal).length} met.`,
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes, ''] : []),
    '## Machine',
    '',
    `- CPU: ${m.cpu} × ${m.cores} cores, ${m.memoryGiB} GiB RAM`,
    `- Node ${m.node}; ${m.dockerRegistry}; ${m.nginx}`,
    `- Settings: \`${JSON.stringify(report.settings)}\``,
    '',
  ].join('\n');
}

/** `suffix` keeps variant runs (e.g. BENCH_AUTH=1 → results-auth.json) beside the default one. */
export async function writeReport(report: Report, dir: URL, suffix = ''): Promise<void> {
  await writeFile(new URL(`results${suffix}.json`, dir), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(new URL(`RESULTS${suffix}.md`, dir), markdown(report));
}
