// `regmirror serve`: read config, build the mirror, listen; SIGTERM/SIGINT drain and exit.
import { pino } from 'pino';
import { createMirror } from '../app.js';
import { loadConfig } from '../config/load.js';
import { UsageError, type CommandContext } from './command.js';

export const SERVE_HELP = `usage: regmirror serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--upstream URL]
                      [--log-level LEVEL] [--offline]

Runs the registry mirror. Without --config, built-in defaults apply (config/default.yaml lists them all).
Flags override the environment, which overrides the file. --offline (or upstream.url "none") never contacts
an upstream: cached tags are served whatever their age, and a miss is a 404 saying the mirror is offline.
Environment overrides: REGMIRROR_CONFIG (config file), REGMIRROR_LISTEN (host:port), REGMIRROR_DATA (data
directory), REGMIRROR_UPSTREAM (upstream URL), REGMIRROR_TAG_TTL, REGMIRROR_UPSTREAM_USERNAME,
REGMIRROR_UPSTREAM_PASSWORD, REGMIRROR_LOG_LEVEL.
`;

/** Flags and the config keys they set; validated by the same schema as the file and the environment. */
const FLAGS: Readonly<Record<string, (value: string) => Record<string, unknown>>> = {
  '--listen': (value) => ({ listen: value }),
  '--data-dir': (value) => ({ dataDir: value }),
  '--upstream': (value) => ({ upstream: { url: value } }),
  '--log-level': (value) => ({ log: { level: value } }),
};

export async function serve(ctx: CommandContext): Promise<void> {
  const overrides: Record<string, unknown>[] = [];
  const args = ctx.args.filter((arg) => arg !== '--offline');
  for (let i = 0; i < args.length; i += 2) {
    const [flag = '', value] = [args[i], args[i + 1]];
    const toConfig = FLAGS[flag];
    if (!toConfig || value === undefined) throw new UsageError(`serve: unexpected argument ${JSON.stringify(flag)}`, SERVE_HELP);
    overrides.push(toConfig(value));
  }
  // --offline wins over --upstream: both set upstream.url, and overrides merge in order, one level deep.
  if (args.length < ctx.args.length) overrides.push({ upstream: { url: 'none' } });
  const merged: Record<string, unknown> = {};
  for (const o of overrides) for (const [k, v] of Object.entries(o)) merged[k] = typeof v === 'object' && v !== null ? { ...(merged[k] as object), ...v } : v;
  const config = await loadConfig({ file: ctx.configFile, env: ctx.env, overrides: merged });
  const log = pino({ level: config.log.level, base: { service: 'regmirror' } });
  const mirror = await createMirror(config, log);
  const address = await mirror.listen();
  const scheme = config.tls ? 'https' : 'http';
  log.info({ ...address, scheme, upstream: config.upstream.url, dataDir: config.dataDir }, 'regmirror listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    mirror.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
