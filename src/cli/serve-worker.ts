// The entry of one http.workers process (forked by http/workers/pool.ts): waits for the primary's Config, serves
// the port until SIGTERM (or until the primary is gone), answers metric scrapes and reports accesses. No logic here.
import cluster from 'node:cluster';
import { pino } from 'pino';
import { createWorkerFront, type WorkerFront } from '../app-worker.js';
import type { ToPrimary, ToWorker } from '../http/workers/ipc.js';
import { AccessReport } from '../http/workers/ipc.js';
import { stdoutDestination } from './log-destination.js';

/** Resolves once the channel took the message; without a primary, at once (there is nobody to tell). */
const send = (message: ToPrimary): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });

async function run(start: Extract<ToWorker, { type: 'regmirror:start' }>): Promise<void> {
  const { config, socketPath } = start;
  const workerId = cluster.worker?.id ?? 0;
  const destination = stdoutDestination();
  process.once('exit', () => destination.flushSync());
  const log = pino({ level: config.log.level, base: { service: 'regmirror', worker: workerId } }, destination.stream);
  destination.reportDrops(log);
  const report = new AccessReport(send);
  const front: WorkerFront = await createWorkerFront(config, log, { socketPath, workerId, accessed: (digest) => report.note(digest) });
  process.on('message', (message: ToWorker) => {
    if (message.type !== 'regmirror:scrape') return;
    front.metrics.registry.getMetricsAsJSON().then(
      (metrics) => void send({ type: 'regmirror:metrics', id: message.id, metrics }),
      (err: unknown) => log.warn({ err }, 'metrics not collected'),
    );
  });
  await front.listen();
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'worker stopping');
    front
      .close()
      .then(() => report.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'worker shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The primary is gone (killed): nothing left to forward to, and no orphan may keep the port.
  process.on('disconnect', () => stop('primary gone'));
}

// Not `once`: a scrape may arrive before the start (the primary scrapes every worker it forked), and must not
// use up the listener that waits for the start, which would leave this worker never listening.
let started = false;
process.on('message', (message: ToWorker) => {
  if (message.type !== 'regmirror:start' || started) return;
  started = true;
  run(message).catch((err: unknown) => {
    process.stderr.write(`regmirror worker: ${(err as Error).message}\n`);
    process.exit(1);
  });
});
void send({ type: 'regmirror:ready' });
