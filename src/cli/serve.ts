// `regmirror serve`: read config, build the mirror, listen; SIGTERM/SIGINT drain and exit.
import { registriesOf } from '../config/registries.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { createMirror, type Mirror } from '../app.js';
import { PRIMARY_CONNECTIONS } from '../http/workers/forward.js';
import { WorkerPool } from '../http/workers/pool.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { parseFlags } from './args.js';
import { stdoutDestination } from './log-destination.js';
import type { CommandContext } from './command.js';

export const SERVE_HELP = `usage: regmirror serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--upstream URL]
                      [--log-level LEVEL] [--offline]

Runs the registry mirror. Without --config, built-in defaults apply (config/default.yaml lists them all).
Flags override the environment, which overrides the file. --offline (or upstream.url "none") never contacts
an upstream: cached tags are served whatever their age, and a miss is a 404 saying the mirror is offline.
Environment overrides: REGMIRROR_CONFIG (config file), REGMIRROR_LISTEN (host:port), REGMIRROR_DATA (data
directory), REGMIRROR_UPSTREAM (upstream URL), REGMIRROR_TAG_TTL, REGMIRROR_UPSTREAM_USERNAME,
REGMIRROR_UPSTREAM_PASSWORD, REGMIRROR_LOG_LEVEL.
`;

const OPTIONS = {
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  upstream: { type: 'string' },
  'log-level': { type: 'string' },
  offline: { type: 'boolean' },
} as const;

/**
 * The config serve runs with: file, environment, then flags, validated by the same schema. Shared with
 * `healthcheck`, so that the probe goes where the server listens.
 */
export async function serveConfig(ctx: CommandContext, command: string, help: string): Promise<Config> {
  const { values, configFile } = parseFlags(ctx, { command, help, options: OPTIONS });
  const overrides = {
    listen: values.listen,
    dataDir: values['data-dir'],
    // --offline wins over --upstream: "none" is the upstream that is never contacted.
    upstream: { url: values.offline ? 'none' : values.upstream },
    log: { level: values['log-level'] },
  };
  return loadConfig({ file: configFile, env: ctx.env, overrides });
}

export async function serve(ctx: CommandContext): Promise<void> {
  const config = await serveConfig(ctx, 'serve', SERVE_HELP);
  const destination = stdoutDestination();
  process.once('exit', () => destination.flushSync());
  const log = pino({ level: config.log.level, base: { service: 'regmirror' } }, destination.stream);
  destination.reportDrops(log);
  const workers = workerCount(config.http.workers);
  const running = workers > 1 ? await servePrimary(config, log, workers) : await serveAlone(config, log);

  let stopping = false;
  const stop = (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(code),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  running.failed = () => stop('workers failing', 1);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `http.workers`: "auto" is one per core the process may use. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

interface Running {
  close(): Promise<void>;
  failed?: () => void;
}

async function serveAlone(config: Config, log: Logger): Promise<Running> {
  const mirror = await createMirror(config, log);
  const address = await mirror.listen();
  logListening(config, log, address, 1);
  return { close: () => mirror.close() };
}

/**
 * The primary of http.workers: the whole mirror on its internal socket, and the workers on the port. Shutdown
 * stops the workers first (they drain their clients, whose forwarded requests the primary still answers).
 */
async function servePrimary(config: Config, log: Logger, count: number): Promise<Running> {
  const running: Running = { close: () => Promise.resolve() };
  const pool: WorkerPool = new WorkerPool({
    count,
    exec: fileURLToPath(new URL('./serve-worker.js', import.meta.url)),
    config,
    log,
    // Called only once workers run, which is after the mirror below exists.
    accessed: (digests) => mirror.touch(digests),
    failed: () => running.failed?.(),
  });
  const mirror: Mirror = await createMirror(config, log, { peerMetrics: () => pool.scrape() });
  const socketPath = await mirror.listenPrimary(count * PRIMARY_CONNECTIONS + 16);
  pool.socketPath = socketPath;
  running.close = async () => {
    await pool.close(config.shutdownTimeout);
    await mirror.close();
  };
  try {
    await pool.start();
  } catch (err) {
    await running.close();
    throw err;
  }
  logListening(config, log, config.listen, count);
  return running;
}

function logListening(config: Config, log: Logger, address: { host: string; port: number }, workers: number): void {
  const scheme = config.tls ? 'https' : 'http';
  const upstreams = registriesOf(config).list.map((r) => ({ name: r.name, url: r.url }));
  log.info({ ...address, scheme, upstreams, dataDir: config.dataDir, workers }, 'regmirror listening');
}
