// `regmirror export` and `regmirror import`: OCI image layout bundles for sites without internet.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { openBundles } from '../app.js';
import { loadConfig } from '../config/load.js';
import { writeBundle } from '../seed/export.js';
import { importBundle } from '../seed/import.js';
import { BundleError, bundleSize, readHave } from '../seed/layout-source.js';
import { allRoots, closure, rootsFor } from '../seed/oci-layout.js';
import { lastOf, parseFlags } from './args.js';
import { UsageError, type CommandContext } from './command.js';
import { openCacheOf } from './data-dir.js';
import { humanBytes, progressBar } from './progress.js';
import { FILE_OPTION, referenceArgs } from './seed.js';

export const EXPORT_HELP = `usage: regmirror export [--config FILE] (IMAGE... | -f images.txt | --pinned | --all) -o bundle.tar
                        [--have digests.txt | --have previous-bundle.tar]

Writes the images, as cached, as an OCI image layout in a tar (index.json entries carry the full reference in
org.opencontainers.image.ref.name), streamed from the store. --have leaves out the blobs the far side already
has: a list of digests, one per line, or an earlier bundle. The mirror must be stopped.
`;

export const IMPORT_HELP = `usage: regmirror import [--config FILE] BUNDLE

Loads an OCI image layout (a tar from regmirror export or skopeo's oci-archive:, or an oci: directory) into
the cache of a stopped mirror: every blob is verified against its digest while it is read; the tags are
recorded and pinned only once the whole bundle checked out. A bad bundle is refused, naming the digest, and
the cache stays as it was.
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
  const bundles = await openCacheOf(config, openBundles);
  const deps = bundles.exporting;
  // Written beside the target and renamed at the end: a failed export leaves no half bundle under its name.
  const partial = `${output}.partial`;
  try {
    const roots = which ? await allRoots(deps, which) : await rootsFor(deps, refs.map((r) => r.canonical));
    const digests = await closure(deps, roots);
    const total = [...digests].filter(([d]) => !have.has(d)).reduce((sum, [, size]) => sum + size, 0);
    const bar = progressBar('export', total, humanBytes);
    const out = createWriteStream(partial);
    const summary = await writeBundle(deps, roots, have, out, (n) => bar.advance(n));
    out.end();
    await finished(out);
    bar.done();
    await rename(partial, output);
    ctx.out(`${output}: ${summary.images} image(s), ${summary.blobs} blob(s), ${humanBytes(summary.bytes)}` + (summary.skipped > 0 ? `; ${summary.skipped} blob(s) left out (--have)` : '') + '\n');
    for (const root of roots) ctx.out(`  ${root.ref} ${root.digest}\n`);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await bundles.close();
  }
}

export async function importCommand(ctx: CommandContext): Promise<void> {
  const { positionals, configFile } = parseFlags(ctx, { command: 'import', help: IMPORT_HELP, options: {}, positionals: true });
  const [source] = positionals;
  if (source === undefined || positionals.length > 1) throw new UsageError('import: name one bundle (a tar or an OCI layout directory)', IMPORT_HELP);
  const total = await bundleSize(source).catch((err: Error) => {
    throw new Error(`import: cannot read ${source}: ${err.message}`);
  });
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const bundles = await openCacheOf(config, openBundles);
  try {
    const bar = progressBar('import', total, humanBytes);
    const summary = await importBundle(bundles.importing, source, (n) => bar.advance(n)).catch((err: unknown) => {
      if (err instanceof BundleError) throw new Error(`import: ${source} refused, nothing imported: ${err.message}`);
      throw err;
    });
    bar.done();
    for (const warning of summary.warnings) ctx.out(`warning: ${warning}\n`);
    ctx.out(`${source}: ${summary.images} image(s), ${summary.blobs} new blob(s) (${humanBytes(summary.bytes)}), ${summary.alreadyCached} already cached; tagged and pinned:\n`);
    for (const tag of summary.tags) ctx.out(`  ${tag}\n`);
  } finally {
    await bundles.close();
  }
}
