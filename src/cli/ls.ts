// `regmirror ls`: the cached repositories and tags, read from the index of a stopped mirror.
import { DiskBlobStore, readStored } from '../cache/blob-store.js';
import { BlobIndex } from '../index/blob-index.js';
import { DOCKER_HUB } from '../registry/reference.js';
import { LevelTagIndex, type TagEntry } from '../index/tag-index.js';
import { loadConfig } from '../config/load.js';
import type { CommandContext } from './command.js';
import { openIndexOf } from './data-dir.js';
import { humanBytes } from './progress.js';
import { walkManifests } from '../registry/manifest-graph.js';
import { parseFlags } from './args.js';

export const LS_HELP = `usage: regmirror ls [--config FILE]

Lists cached tags: repository:tag, digest, size of the manifest and the blobs it names, when a client last
pulled it, how often, and when upstream last confirmed it. Reads the data directory of the config
(or REGMIRROR_DATA); LevelDB allows one process at a time, so run it while the mirror is stopped.
`;

export async function ls(ctx: CommandContext): Promise<void> {
  const { configFile } = parseFlags(ctx, { command: 'ls', help: LS_HELP, options: {} });
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const db = await openIndexOf(config);
  try {
    const tags = new LevelTagIndex(db, 1000);
    const blobs = new BlobIndex(db, 10_000);
    const store = new DiskBlobStore(config.dataDir);
    const rows: string[][] = [['REPOSITORY:TAG', 'DIGEST', 'SIZE', 'LAST PULLED', 'HITS', 'CHECKED']];
    const seen = new Set<string>();
    for await (const entry of tags.entries()) {
      // Docker Hub's tags as docker shows them (docker.io implied); every other registry's with its name.
      const name = entry.upstream === DOCKER_HUB ? `${entry.repo}:${entry.tag}` : `${entry.upstream}/${entry.repo}:${entry.tag}`;
      const id = `${name}@${entry.digest}`;
      if (seen.has(id)) continue; // one tag, several accept classes, same digest
      seen.add(id);
      rows.push([
        name,
        entry.digest.slice(0, 19),
        humanBytes(await imageSize(entry, blobs, store)),
        when(entry.pulledAt),
        String(entry.hits ?? 0),
        when(entry.checkedAt),
      ]);
    }
    ctx.out(table(rows));
    ctx.out(`${rows.length - 1} tag(s) in ${config.dataDir}\n`);
  } finally {
    await db.close();
  }
}

/**
 * The manifest plus every blob it names (for an index: its platform manifests and theirs), as far as they are
 * cached. Counted per path: a layer two platforms share counts twice.
 */
async function imageSize(entry: TagEntry, blobs: BlobIndex, store: DiskBlobStore): Promise<number> {
  const nodes = await walkManifests([{ digest: entry.digest }], {
    maxDepth: 2,
    missing: 'skip',
    platformsOptional: true,
    badManifest: 'skip',
    artifactBlobs: true,
    dedupe: false,
    stat: (node) => blobs.get(node.digest),
    read: (node) => readStored(store, node.digest),
  });
  return nodes.reduce((total, node) => total + (node.info?.size ?? 0), 0);
}

function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}
