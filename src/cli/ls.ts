// `regmirror ls`: the cached repositories and tags.
import type { ImageRow } from '../admin/images.js';
import { loadConfig } from '../config/load.js';
import { withAdmin } from './admin-client.js';
import type { CommandContext } from './command.js';
import { humanBytes } from './progress.js';
import { parseFlags } from './args.js';

export const LS_HELP = `usage: regmirror ls [--config FILE]

Lists cached tags: repository:tag, digest, size of the manifest and the blobs it names, when a client last
pulled it, how often, and when upstream last confirmed it. For the data directory of the config (or
REGMIRROR_DATA): asks the running mirror through its admin socket, or reads the directory when it is stopped.
`;

export async function ls(ctx: CommandContext): Promise<void> {
  const { configFile } = parseFlags(ctx, { command: 'ls', help: LS_HELP, options: {} });
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const { images, dataDir } = await withAdmin(config, (api) => api.images());
  ctx.out(formatImages(images, dataDir));
}

/** The table `ls` prints, from the rows a running mirror sends or the data directory gives. */
export function formatImages(images: readonly ImageRow[], dataDir: string): string {
  const rows: string[][] = [['REPOSITORY:TAG', 'DIGEST', 'SIZE', 'LAST PULLED', 'HITS', 'CHECKED']];
  for (const image of images) {
    rows.push([image.name, image.digest.slice(0, 19), humanBytes(image.size), when(image.pulledAt), String(image.pulls), when(image.checkedAt)]);
  }
  return `${table(rows)}${rows.length - 1} tag(s) in ${dataDir}\n`;
}

function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}
