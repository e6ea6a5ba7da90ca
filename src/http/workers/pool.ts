// The primary's workers (http.workers, issue 16.3): forks them on the public port (node:cluster: the primary
// accepts and hands connections round robin), restarts one that dies (bounded), collects their metrics for
// /metrics and their accesses for retention, and stops them first on shutdown, so that what they forward still
// finds the primary.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { MetricsJson } from '../../metrics/aggregate.js';
import type { Digest } from '../../registry/reference.js';
import { accessedDigests, isToPrimary, type ToWorker } from './ipc.js';

/** A worker that answers no scrape within this is left out of that one /metrics answer. */
const SCRAPE_TIMEOUT_MS = 2000;
/** At most this many restarts within RESTART_WINDOW_MS; then the mirror stops (a supervisor restarts it whole). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** Beyond the shutdown grace, a worker that has not exited is killed. */
const KILL_MARGIN_MS = 2000;

export interface WorkerPoolOptions {
  count: number;
  /** The worker's entry module (cli/serve-worker.ts, built). */
  exec: string;
  config: Config;
  log: Logger;
  accessed(digests: Digest[]): void;
  /** Workers keep dying: the caller shuts the mirror down. */
  failed(): void;
}

export class WorkerPool {
  private readonly workers = new Set<Worker>();
  /** Those of `workers` that listen: only they have the Config, and so answer a scrape. */
  private readonly listening = new Set<Worker>();
  private readonly restarts: number[] = [];
  private readonly scrapes = new Map<number, (metrics: MetricsJson) => void>();
  private nextScrape = 0;
  private stopping = false;
  /** The primary's internal socket: known once it listens, before start(). */
  socketPath = '';

  constructor(private readonly o: WorkerPoolOptions) {}

  /** Forks every worker; resolves once all listen on the port, rejects if one exits before it does. */
  async start(): Promise<void> {
    cluster.setupPrimary({ exec: this.o.exec, args: [], silent: false });
    await Promise.all(Array.from({ length: this.o.count }, () => this.fork()));
  }

  private fork(): Promise<void> {
    const worker = cluster.fork();
    this.workers.add(worker);
    const log = this.o.log.child({ worker: worker.id });
    worker.on('message', (message: unknown) => {
      if (!isToPrimary(message)) return;
      if (message.type === 'regmirror:ready') {
        const start: ToWorker = { type: 'regmirror:start', config: this.o.config, socketPath: this.socketPath };
        worker.send(start);
      } else if (message.type === 'regmirror:accessed') this.o.accessed(accessedDigests(message));
      else this.scrapes.get(message.id)?.(message.metrics);
    });
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.once('listening', () => {
        listening = true;
        this.listening.add(worker);
        resolve();
      });
      worker.once('exit', (code, signal) => {
        this.workers.delete(worker);
        this.listening.delete(worker);
        if (!listening) {
          reject(new Error(`worker ${worker.id} exited before it listened (code ${code}, signal ${signal})`));
          return;
        }
        if (this.stopping) return;
        log.error({ code, signal }, 'worker died');
        this.restart();
      });
    });
  }

  private restart(): void {
    // A replacement that was starting when close() began exits before it listens: that is no death to answer.
    if (this.stopping) return;
    const now = Date.now();
    while (this.restarts.length > 0 && (this.restarts[0] as number) < now - RESTART_WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= MAX_RESTARTS) {
      this.o.log.fatal({ restarts: this.restarts.length, windowMs: RESTART_WINDOW_MS }, 'workers keep dying: stopping');
      this.o.failed();
      return;
    }
    this.restarts.push(now);
    this.fork().catch((err: unknown) => {
      this.o.log.error({ err }, 'worker restart failed');
      this.restart();
    });
  }

  /** Every worker's metrics, as getMetricsAsJSON gives them; a worker that does not answer in time is left out. */
  async scrape(): Promise<MetricsJson[]> {
    // A worker still starting has nothing to report yet: asking it would only hold /metrics for SCRAPE_TIMEOUT_MS.
    const answers = [...this.listening].map(
      (worker) =>
        new Promise<MetricsJson | undefined>((resolve) => {
          const id = ++this.nextScrape;
          const timer = setTimeout(() => done(undefined), SCRAPE_TIMEOUT_MS);
          const done = (metrics: MetricsJson | undefined): void => {
            clearTimeout(timer);
            this.scrapes.delete(id);
            resolve(metrics);
          };
          this.scrapes.set(id, done);
          const request: ToWorker = { type: 'regmirror:scrape', id };
          if (worker.isConnected()) worker.send(request);
          else done(undefined);
        }),
    );
    return (await Promise.all(answers)).filter((m): m is MetricsJson => m !== undefined);
  }

  /** SIGTERM to each worker (it drains its clients, bounded by shutdownTimeout); killed if still there after. */
  async close(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const exits = [...this.workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          const timer = setTimeout(() => worker.process.kill('SIGKILL'), timeoutMs + KILL_MARGIN_MS);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          worker.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  }
}
