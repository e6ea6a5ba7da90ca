// `regmirror pin` / `unpin`: images kept whatever the quota says, and never collected, recorded in the index.
import { loadConfig } from '../config/load.js';
import { RegistryError } from '../registry/errors.js';
import { parseImageReference } from '../registry/reference.js';
import { parseFlags } from './args.js';
import { UsageError, type CommandContext } from './command.js';
import type { PinChange, PinRow } from '../admin/operations.js';
import { withAdmin } from './admin-client.js';

export const PIN_HELP = `usage: regmirror pin [--config FILE] [IMAGE...]
       regmirror unpin [--config FILE] IMAGE...

Pins images (alpine:3.19, docker.io/library/nginx@sha256:...): a pinned image and everything it references
stays whatever cache.maxBytes says and is never garbage-collected. Without IMAGE, pin lists the pins.
A running mirror is changed through its admin socket, at once; a stopped one's data directory directly.
Pins listed under cache.pins in the config are shown as (config) and changed only there.
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
  if (refs.length === 0) {
    ctx.out(formatPins(await withAdmin(config, (api) => api.pins())));
    return;
  }
  const changes = await withAdmin(config, (api) => (action === 'pin' ? api.pin(refs) : api.unpin(refs)));
  ctx.out(formatPinChanges(action, changes));
}

export function formatPins(pins: readonly PinRow[]): string {
  const lines = pins.map((p) => (p.fromConfig || p.pinnedAt === undefined ? `${p.ref} (config)` : `${p.ref} (pinned ${new Date(p.pinnedAt).toISOString()})`));
  return [...lines, `${pins.length} pin(s)`].join('\n') + '\n';
}

export function formatPinChanges(action: 'pin' | 'unpin', changes: readonly PinChange[]): string {
  return changes.map(({ ref, changed }) => `${action === 'pin' ? (changed ? 'pinned' : 'already pinned') : changed ? 'unpinned' : 'was not pinned'} ${ref}\n`).join('');
}
