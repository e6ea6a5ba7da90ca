// `regmirror export` and `regmirror import`: OCI image layout bundles for sites without internet.
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { ExportPlan } from '../admin/operations.js';
import { loadConfig } from '../config/load.js';
import type { ImportSummary } from '../seed/import.js';
import { BundleError, bundleSize, readHave } from '../seed/layout-source.js';
import { AdminRemoteError, withAdmin } from './admin-client.js';
import { lastOf, parseFlags } from './args.js';
import { UsageError, type CommandContext } from './command.js';
import { humanBytes, progressBar, type Progress } from './progress.js';
import { FILE_OPTION, referenceArgs } from './seed.js';

export const EXPORT_HELP = `usage: regmirror export [--config FILE] (IMAGE... | -f images.txt | --pinned | --all) -o bundle.tar
                        [--have digests.txt | --have previous-bundle.tar]

Writes the images, as cached, as an OCI image layout in a tar (index.json entries carry the full reference in
org.opencontainers.image.ref.name), streamed from the store. --have leaves out the blobs the far side already
has: a list of digests, one per line, or an earlier bundle. A running mirror streams it through its admin
socket (what is exported stays in the cache until the export ends); a stopped one's data directory is read.
`;

export const IMPORT_HELP = `usage: regmirror import [--config FILE] BUNDLE

Loads an OCI image layout (a tar from regmirror export or skopeo's oci-archive:, or an oci: directory) into
the cache: every blob is verified against its digest while it is read; the tags are
recorded and pinned only once the whole bundle checked out. A bad bundle is refused, naming the digest, and
the cache stays as it was. A running mirror receives it through its admin socket (a directory is sent as a
tar); a stopped one's data directory is written directly.
`;

const EXPORT_OPTIONS = {
  ...FILE_OPTION,
  output: { type: 'string', short: 'o' },
  have: { type: 'string' },
  pinned: { type: 'boolean' },
  all: { type: 'boolean' },
} as const;

export async function exportCommand(ctx: CommandContext): Promise<void> {
  const { values, tokens, configFile } = parseFlags(ctx, { command: 'export', help: EXPORT_HELP, options: EXPORT_OPTIONS, positionals: true });
  const refs = await referenceArgs(tokens, EXPORT_HELP, 'export');
  const { output, have: havePath } = values;
  // Of --pinned and --all, the later one wins, as a repeated flag does.
  const which = lastOf(tokens, ['pinned', 'all']) as 'pinned' | 'all' | undefined;
  if (!output) throw new UsageError('export: -o bundle.tar is required', EXPORT_HELP);
  if ((refs.length > 0 ? 1 : 0) + (which ? 1 : 0) !== 1) throw new UsageError('export: name images, or --pinned, or --all (one of them)', EXPORT_HELP);
  const have = havePath ? await readHave(havePath).catch((err: Error) => { throw new Error(`export: --have ${havePath}: ${err.message}`); }) : new Set<string>();
  const config = await loadConfig({ file: configFile, env: ctx.env });
  // Written beside the target and renamed at the end: a failed export leaves no half bundle under its name.
  const partial = `${output}.partial`;
  let out: WriteStream | undefined;
  let bar: Progress | undefined;
  const open = (plan: ExportPlan): WriteStream => {
    bar = progressBar('export', plan.bytes, humanBytes);
    return (out = createWriteStream(partial));
  };
  const request = { refs: refs.map((r) => r.canonical), ...(which ? { which } : {}), have: [...have] };
  try {
    const plan = await withAdmin(config, (api) => api.exportBundle(request, open, (n) => bar?.advance(n)));
    const file = out as WriteStream;
    file.end();
    await finished(file);
    bar?.done();
    await rename(partial, output);
    ctx.out(formatExport(output, plan));
  } catch (err) {
    out?.destroy();
    await rm(partial, { force: true });
    throw err;
  }
}

export function formatExport(output: string, plan: ExportPlan): string {
  const head = `${output}: ${plan.images} image(s), ${plan.blobs} blob(s), ${humanBytes(plan.bytes)}` + (plan.skipped > 0 ? `; ${plan.skipped} blob(s) left out (--have)` : '');
  return [head, ...plan.roots.map((root) => `  ${root.ref} ${root.digest}`)].join('\n') + '\n';
}

export async function importCommand(ctx: CommandContext): Promise<void> {
  const { positionals, configFile } = parseFlags(ctx, { command: 'import', help: IMPORT_HELP, options: {}, positionals: true });
  const [source] = positionals;
  if (source === undefined || positionals.length > 1) throw new UsageError('import: name one bundle (a tar or an OCI layout directory)', IMPORT_HELP);
  const total = await bundleSize(source).catch((err: Error) => {
    throw new Error(`import: cannot read ${source}: ${err.message}`);
  });
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const bar = progressBar('import', total, humanBytes);
  const summary = await withAdmin(config, (api) => api.importBundle(source, (n) => bar.advance(n))).catch((err: unknown) => {
    // The same message whether the bundle was refused here or by the running mirror.
    if (err instanceof BundleError || (err instanceof AdminRemoteError && err.code === 'BAD_REQUEST')) {
      throw new Error(`import: ${source} refused, nothing imported: ${(err as Error).message}`);
    }
    throw err;
  });
  bar.done();
  ctx.out(formatImport(source, summary));
}

export function formatImport(source: string, summary: ImportSummary): string {
  const lines = summary.warnings.map((warning) => `warning: ${warning}`);
  lines.push(`${source}: ${summary.images} image(s), ${summary.blobs} new blob(s) (${humanBytes(summary.bytes)}), ${summary.alreadyCached} already cached; tagged and pinned:`);
  for (const tag of summary.tags) lines.push(`  ${tag}`);
  return lines.join('\n') + '\n';
}
