// `regmirror seed`: fills the cache with images, through the server's own code path, and pins them: through the
// running mirror's admin socket (sharing its downloads and pull accounting), or on a stopped mirror's data directory.
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config/load.js';
import { RegistryError } from '../registry/errors.js';
import { parseImageReference, type ImageReference } from '../registry/reference.js';
import { parsePlatforms, type ImageSeedResult, type Platform, type SeedProgress } from '../seed/seed.js';
import { withAdmin } from './admin-client.js';
import { lastOf, parseFlags, type Token } from './args.js';
import { UsageError, type CommandContext } from './command.js';
import { humanBytes, progressBar, type Progress } from './progress.js';

export const SEED_HELP = `usage: regmirror seed [--config FILE] IMAGE... | -f images.txt
                      [--platform linux/amd64,linux/arm64 | --all-platforms]

Pulls images into the cache (the data directory of the config, or REGMIRROR_DATA) the way the server does: one
verified download per blob, the same tag records and pull accounting. A running mirror seeds through its admin
socket (a client pulling the same blob shares the download); a stopped one's data directory is opened directly.
Seeded images are pinned. Default platform: linux/amd64. images.txt: one reference per line; # starts a comment.
`;

/** The option naming images besides IMAGE arguments: `-f FILE`, one reference a line, # starts a comment. */
export const FILE_OPTION = { file: { type: 'string', short: 'f', multiple: true } } as const;

/** IMAGE arguments and `-f FILE` lists, validated, in command-line order. */
export async function referenceArgs(tokens: Token[], help: string, command: string): Promise<ImageReference[]> {
  const texts: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') texts.push(t.value);
    if (t.kind !== 'option' || t.name !== 'file' || t.value === undefined) continue;
    const file = t.value;
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new UsageError(`${command}: cannot read ${file}: ${err.message}`, help);
    });
    texts.push(...text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean));
  }
  return texts.map((text) => {
    try {
      return parseImageReference(text);
    } catch (err) {
      throw new UsageError(`${command}: ${JSON.stringify(text)} is not an image reference (${err instanceof RegistryError ? err.message : String(err)})`, help);
    }
  });
}

const OPTIONS = { ...FILE_OPTION, platform: { type: 'string' }, 'all-platforms': { type: 'boolean' } } as const;

export async function seed(ctx: CommandContext): Promise<void> {
  const { values, tokens, configFile } = parseFlags(ctx, { command: 'seed', help: SEED_HELP, options: OPTIONS, positionals: true });
  const refs = await referenceArgs(tokens, SEED_HELP, 'seed');
  let platforms: Platform[] | 'all' = [{ os: 'linux', architecture: 'amd64' }];
  // Of --platform and --all-platforms, the later one wins, as a repeated flag does.
  const choice = lastOf(tokens, ['platform', 'all-platforms']);
  if (choice === 'all-platforms') platforms = 'all';
  else if (choice === 'platform') {
    try {
      platforms = parsePlatforms(values.platform ?? '');
    } catch (err) {
      throw new UsageError(`seed: ${(err as Error).message}`, SEED_HELP);
    }
  }
  if (refs.length === 0) throw new UsageError('seed: name at least one image', SEED_HELP);
  const config = await loadConfig({ file: configFile, env: ctx.env });
  if (config.upstream.url === 'none') throw new Error('seed: this mirror is offline (upstream.url is none): nothing to seed from');
  let bar: Progress | undefined;
  const progress: SeedProgress = {
    start: (image, total) => (bar = progressBar(image, total, humanBytes)),
    advance: (bytes) => bar?.advance(bytes),
    end: () => bar?.done(),
  };
  const summary = await withAdmin(config, (api) => api.seed(refs.map((r) => r.canonical), platforms, progress, (result) => ctx.out(formatSeeded(result))));
  ctx.out(
    `${summary.images.length} image(s), ${summary.blobs} blob(s): ${humanBytes(summary.bytesFetched)} fetched, ${humanBytes(summary.bytesCached)} already cached, ${summary.pullsSpent} pull(s) spent\n`,
  );
}

export function formatSeeded(result: ImageSeedResult): string {
  return `seeded ${result.ref} ${result.digest} (${result.platforms.join(', ')}): ${result.blobs} blobs, ${humanBytes(result.bytesFetched)} fetched, ${humanBytes(result.bytesCached)} already cached; pinned\n`;
}
