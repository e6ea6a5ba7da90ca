#!/usr/bin/env node
// Composition root: read config, build the mirror, listen; SIGTERM/SIGINT drain and exit. No logic here.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createMirror } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';

const USAGE = `usage: regmirror [--config FILE]

Runs the registry mirror. Without --config, built-in defaults apply (see config/default.yaml).
Environment: REGMIRROR_CONFIG (config file), REGMIRROR_LISTEN (host:port), REGMIRROR_DATA (data directory),
REGMIRROR_UPSTREAM (upstream registry URL), REGMIRROR_LOG_LEVEL.
`;

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`regmirror: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (args.values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const config = await loadConfig({ file: args.values.config ?? process.env.REGMIRROR_CONFIG, env: process.env });
  const log = pino({ level: config.log.level, base: { service: 'regmirror' } });
  const mirror = await createMirror(config, log);
  const address = await mirror.listen();
  log.info({ ...address, upstream: config.upstream.url, dataDir: config.dataDir }, 'regmirror listening');

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

main().catch((err: unknown) => {
  // A bad config or an unusable data directory is a one-line message, not a stack trace.
  const message = err instanceof ConfigError ? err.message : `regmirror: cannot start: ${(err as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
