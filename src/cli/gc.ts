// `regmirror gc`: removes what no cached tag and no pin reaches, past the grace period.
import type { GcReport } from '../cache/retention.js';
import { loadConfig } from '../config/load.js';
import { withAdmin } from './admin-client.js';
import { parseFlags } from './args.js';
import type { CommandContext } from './command.js';
import { humanBytes } from './progress.js';

export const GC_HELP = `usage: regmirror gc [--config FILE] [--dry-run]

Removes blobs and manifests that no cached tag and no pin reaches and that nobody created or pulled within
cache.gcGrace (default 24h), nor anything being downloaded or streamed. A running mirror does it through its
admin socket (it also does so every cache.gcInterval); a stopped one's data directory is opened directly.
--dry-run lists what would go and removes nothing.
`;

export async function gc(ctx: CommandContext): Promise<void> {
  const { values, configFile } = parseFlags(ctx, { command: 'gc', help: GC_HELP, options: { 'dry-run': { type: 'boolean' } } });
  const dryRun = values['dry-run'] ?? false;
  const config = await loadConfig({ file: configFile, env: ctx.env });
  ctx.out(gcSummary(await withAdmin(config, (api) => api.gc(dryRun))));
}

export function gcSummary(report: GcReport): string {
  const verb = report.dryRun ? 'would remove' : 'removed';
  const lines = report.removed.map((r) => `${verb} ${r.digest} ${r.manifest ? 'manifest' : 'blob'} ${r.size}`);
  lines.push(`${verb} ${report.removed.length} item(s), ${humanBytes(report.bytes)}; ${report.reachable} digest(s) reachable from tags and pins`);
  return `${lines.join('\n')}\n`;
}
