// What the primary and its workers tell each other over node:cluster's IPC channel (http.workers). Requests go
// over the primary's internal socket (forward.ts); this channel carries only the start, the accesses that
// retention must see, and the metrics scrape.
import type { Config } from '../../config/schema.js';
import type { MetricsJson } from '../../metrics/aggregate.js';
import { isDigest, type Digest } from '../../registry/reference.js';

/** Primary → worker. */
export type ToWorker =
  | { type: 'regmirror:start'; config: Config; socketPath: string }
  | { type: 'regmirror:scrape'; id: number };

/** Worker → primary. */
export type ToPrimary =
  /** Sent once the worker listens for messages: a message sent before that would be lost, so the Config waits for it. */
  | { type: 'regmirror:ready' }
  | { type: 'regmirror:accessed'; digests: Digest[] }
  | { type: 'regmirror:metrics'; id: number; metrics: MetricsJson };

/** Accesses reach the primary at most this often, as one message: its index batches them too (app.ts flush). */
export const ACCESS_REPORT_MS = 1000;
/** One message holds at most this many digests; more wait for the next report. */
const ACCESS_REPORT_MAX = 10_000;

export function isToPrimary(message: unknown): message is ToPrimary {
  const type = (message as { type?: unknown } | null)?.type;
  return type === 'regmirror:ready' || type === 'regmirror:accessed' || type === 'regmirror:metrics';
}

/** Only well-formed digests: the primary trusts its workers, but not blindly with its index keys. */
export function accessedDigests(message: { digests: unknown }): Digest[] {
  return Array.isArray(message.digests) ? message.digests.filter((d): d is Digest => typeof d === 'string' && isDigest(d)) : [];
}

/** How a worker sends: resolves once the message is handed to the channel (before the worker may exit). */
export type Send = (message: ToPrimary) => Promise<void>;

/** A worker's side of the access reports: digests collected, sent every ACCESS_REPORT_MS and at the end. */
export class AccessReport {
  private readonly pending = new Set<Digest>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly send: Send) {
    this.timer = setInterval(() => void this.flush(), ACCESS_REPORT_MS);
    this.timer.unref();
  }

  note(digest: Digest): void {
    if (this.pending.size < ACCESS_REPORT_MAX) this.pending.add(digest);
  }

  flush(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    const digests = [...this.pending];
    this.pending.clear();
    return this.send({ type: 'regmirror:accessed', digests });
  }

  /** The last report, sent before the worker exits (its accesses would be lost otherwise). */
  close(): Promise<void> {
    clearInterval(this.timer);
    return this.flush();
  }
}
