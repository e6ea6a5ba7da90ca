// `regmirror serve`: read config, build the mirror, listen; SIGTERM/SIGINT drain and exit.
import { pino } from 'pino';
import { createMirror } from '../app.js';
import { loadConfig } from '../config/load.js';
import { UsageError, type CommandContext } from './command.js';

export const SERVE_HELP = `usage: regmirror serve [--config FILE]

Runs the registry mirror. Without --config, built-in defaults apply (config/default.yaml lists them all).
Environment overrides: REGMIRROR_CONFIG (config file), REGMIRROR_LISTEN (host:port), REGMIRROR_DATA (data
directory), REGMIRROR_UPSTREAM (upstream URL), REGMIRROR_TAG_TTL, REGMIRROR_UPSTREAM_USERNAME,
REGMIRROR_UPSTREAM_PASSWORD, REGMIRROR_LOG_LEVEL.
`;

export async function serve(ctx: CommandContext): Promise<void> {
  if (ctx.args.length > 0) throw new UsageError(`serve: unexpected argument ${JSON.stringify(ctx.args[0])}`, SERVE_HELP);
  const config = await loadConfig({ file: ctx.configFile, env: ctx.env });
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
