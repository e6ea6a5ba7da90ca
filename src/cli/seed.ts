// `regmirror seed`: fills a stopped mirror's cache with images, through the server's own code path, and pins them.
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config/load.js';
import { RegistryError } from '../registry/errors.js';
import { parseImageReference, type ImageReference } from '../registry/reference.js';
import { parsePlatforms, pullsSpent, seedImage, type Platform, type SeedProgress } from '../seed/seed.js';
import { UsageError, type CommandContext } from './command.js';
import { openCacheOf } from './data-dir.js';
import { humanBytes, progressBar, type Progress } from './progress.js';

export const SEED_HELP = `usage: regmirror seed [--config FILE] IMAGE... | -f images.txt
                      [--platform linux/amd64,linux/arm64 | --all-platforms]

Pulls images into the cache of a stopped mirror (the data directory of the config, or REGMIRROR_DATA), the way
the server does: one verified download per blob, the same tag records and pull accounting. Seeded images are
pinned. Default platform: linux/amd64. images.txt: one reference per line; # starts a comment.
`;

export interface ReferenceArgs {
  refs: ImageReference[];
  rest: string[];
}

/** IMAGE arguments and `-f FILE` lists, validated, in order; other arguments are returned in `rest`. */
export async function referenceArgs(args: string[], help: string, command: string): Promise<ReferenceArgs> {
  const texts: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '-f' || arg === '--file') {
      const file = args[++i];
      if (!file) throw new UsageError(`${command}: -f needs a file`, help);
      const text = await readFile(file, 'utf8').catch((err: Error) => {
        throw new UsageError(`${command}: cannot read ${file}: ${err.message}`, help);
      });
      texts.push(...text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean));
    } else if (arg.startsWith('-')) {
      rest.push(arg);
      if (!arg.includes('=') && args[i + 1] !== undefined && !args[i + 1]?.startsWith('-') && VALUED.has(arg)) rest.push(args[++i] as string);
    } else {
      texts.push(arg);
    }
  }
  const refs = texts.map((text) => {
    try {
      return parseImageReference(text);
    } catch (err) {
      throw new UsageError(`${command}: ${JSON.stringify(text)} is not an image reference (${err instanceof RegistryError ? err.message : String(err)})`, help);
    }
  });
  return { refs, rest };
}

/** Options that take a value, so that the value is not taken for an image. */
const VALUED = new Set(['--platform', '-o', '--output', '--have']);

export async function seed(ctx: CommandContext): Promise<void> {
  const { refs, rest } = await referenceArgs(ctx.args, SEED_HELP, 'seed');
  let platforms: Platform[] | 'all' = [{ os: 'linux', architecture: 'amd64' }];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--all-platforms') platforms = 'all';
    else if (rest[i] === '--platform') {
      try {
        platforms = parsePlatforms(rest[++i] ?? '');
      } catch (err) {
        throw new UsageError(`seed: ${(err as Error).message}`, SEED_HELP);
      }
    } else throw new UsageError(`seed: unexpected argument ${JSON.stringify(rest[i])}`, SEED_HELP);
  }
  if (refs.length === 0) throw new UsageError('seed: name at least one image', SEED_HELP);
  const config = await loadConfig({ file: ctx.configFile, env: ctx.env });
  if (config.upstream.url === 'none') throw new Error('seed: this mirror is offline (upstream.url is none): nothing to seed from');
  const core = await openCacheOf(config);
  let bar: Progress | undefined;
  const progress: SeedProgress = {
    start: (image, total) => (bar = progressBar(image, total, humanBytes)),
    advance: (bytes) => bar?.advance(bytes),
    end: () => bar?.done(),
  };
  const totals = { images: 0, blobs: 0, fetched: 0, cached: 0 };
  try {
    for (const ref of refs) {
      const result = await seedImage(core, ref, platforms, progress);
      totals.images++;
      totals.blobs += result.blobs;
      totals.fetched += result.bytesFetched;
      totals.cached += result.bytesCached;
      ctx.out(`seeded ${result.ref} ${result.digest} (${result.platforms.join(', ')}): ${result.blobs} blobs, ${humanBytes(result.bytesFetched)} fetched, ${humanBytes(result.bytesCached)} already cached; pinned\n`);
    }
    ctx.out(
      `${totals.images} image(s), ${totals.blobs} blob(s): ${humanBytes(totals.fetched)} fetched, ${humanBytes(totals.cached)} already cached, ${await pullsSpent(core)} pull(s) spent\n`,
    );
  } finally {
    await core.close();
  }
}
