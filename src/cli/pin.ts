// `regmirror pin` / `unpin`: images kept whatever the quota says, and never collected, recorded in the index.
import { loadConfig } from '../config/load.js';
import { RegistryError } from '../registry/errors.js';
import { parseImageReference } from '../registry/reference.js';
import { parseFlags } from './args.js';
import { UsageError, type CommandContext } from './command.js';
import { openDataDir } from './data-dir.js';

export const PIN_HELP = `usage: regmirror pin [--config FILE] [IMAGE...]
       regmirror unpin [--config FILE] IMAGE...

Pins images (alpine:3.19, docker.io/library/nginx@sha256:...): a pinned image and everything it references
stays whatever cache.maxBytes says and is never garbage-collected. Without IMAGE, pin lists the pins.
Works on a stopped mirror's data directory; for a running mirror, list them under cache.pins in the config.
`;

export async function pin(ctx: CommandContext): Promise<void> {
  await changePins(ctx, 'pin');
}

export async function unpin(ctx: CommandContext): Promise<void> {
  await changePins(ctx, 'unpin');
}

async function changePins(ctx: CommandContext, action: 'pin' | 'unpin'): Promise<void> {
  const { positionals, configFile } = parseFlags(ctx, { command: action, help: PIN_HELP, options: {}, positionals: true });
  if (action === 'unpin' && positionals.length === 0) throw new UsageError('unpin: name at least one image', PIN_HELP);
  const refs = positionals.map((text) => {
    try {
      return parseImageReference(text).canonical;
    } catch (err) {
      const reason = err instanceof RegistryError ? err.message : String(err);
      throw new UsageError(`${action}: ${JSON.stringify(text)} is not an image reference (${reason})`, PIN_HELP);
    }
  });
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const data = await openDataDir(config);
  try {
    if (refs.length === 0) {
      const pins = await data.pins.list();
      const fromConfig = config.cache.pins.map((p) => `${parseImageReference(p).canonical} (config)`);
      ctx.out([...pins.map((p) => `${p.ref} (pinned ${new Date(p.pinnedAt).toISOString()})`), ...fromConfig, `${pins.length + fromConfig.length} pin(s)`].join('\n') + '\n');
      return;
    }
    for (const ref of refs) {
      const changed = action === 'pin' ? await data.pins.add(ref, Date.now()) : await data.pins.remove(ref);
      ctx.out(`${action === 'pin' ? (changed ? 'pinned' : 'already pinned') : changed ? 'unpinned' : 'was not pinned'} ${ref}\n`);
    }
  } finally {
    await data.close();
  }
}
