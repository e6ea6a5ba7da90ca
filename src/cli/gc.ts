// `regmirror gc`: removes what no cached tag and no pin reaches, past the grace period, from a stopped mirror.
import { InUse } from '../cache/in-use.js';
import { Retention, type GcReport } from '../cache/retention.js';
import { loadConfig } from '../config/load.js';
import { Metrics } from '../metrics/metrics.js';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { parseFlags } from './args.js';
import type { CommandContext } from './command.js';
import { openDataDir } from './data-dir.js';
import { humanBytes } from './progress.js';

export const GC_HELP = `usage: regmirror gc [--config FILE] [--dry-run]

Removes blobs and manifests that no cached tag and no pin reaches and that nobody created or pulled within
cache.gcGrace (default 24h), from the data directory of a stopped mirror. A running mirror does the same
every cache.gcInterval. --dry-run lists what would go and removes nothing.
`;

export async function gc(ctx: CommandContext): Promise<void> {
  const { values, configFile } = parseFlags(ctx, { command: 'gc', help: GC_HELP, options: { 'dry-run': { type: 'boolean' } } });
  const dryRun = values['dry-run'] ?? false;
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const data = await openDataDir(config);
  try {
    await data.index.loadUsage();
    const retention = new Retention({
      ...data,
      inUse: new InUse(), // the mirror is stopped: nothing downloads or streams
      metrics: new Metrics(new Registry()),
      log: pino({ level: 'silent' }),
      config: config.cache,
    });
    ctx.out(gcSummary(await retention.gc({ dryRun })));
  } finally {
    await data.close();
  }
}

export function gcSummary(report: GcReport): string {
  const verb = report.dryRun ? 'would remove' : 'removed';
  const lines = report.removed.map((r) => `${verb} ${r.digest} ${r.manifest ? 'manifest' : 'blob'} ${r.size}`);
  lines.push(`${verb} ${report.removed.length} item(s), ${humanBytes(report.bytes)}; ${report.reachable} digest(s) reachable from tags and pins`);
  return `${lines.join('\n')}\n`;
}
