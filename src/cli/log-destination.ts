// Where `serve` writes its log: stdout, without ever blocking the event loop on it (issue 16, point 3).
// pino's default destination writes synchronously; when stdout is a pipe whose reader falls behind (docker's log
// driver, journald, a terminal), each write either blocks or, on EAGAIN, sleeps 100 ms in Atomics.wait and
// retries: a whole-process stall. Measured with a pipe read at 4 MB/s, 100 wrk connections on manifests: p99
// 231 ms (the user's report: 678 ms). Here writes are asynchronous and batched by sonic-boom; a reader that stays
// behind for more than MAX_BUFFERED_BYTES costs log lines (counted, and reported once it catches up), not latency.
import { pino, type Logger } from 'pino';

/** What a stalled log reader may cost in memory before lines are dropped: ~60,000 access log lines. */
export const MAX_BUFFERED_BYTES = 16 * 2 ** 20;
const DROP_REPORT_MS = 10_000;

export interface LogDestination {
  stream: ReturnType<typeof pino.destination>;
  /** Starts reporting dropped lines through `log` (every 10 s while any were dropped). */
  reportDrops(log: Logger): void;
  /** Lines dropped since the last report. */
  readonly dropped: number;
  /** Writes what is buffered before the process exits. */
  flushSync(): void;
}

export function stdoutDestination(fd = 1, maxBufferedBytes = MAX_BUFFERED_BYTES): LogDestination {
  const stream = pino.destination({ dest: fd, sync: false, maxLength: maxBufferedBytes });
  let dropped = 0;
  stream.on('drop', () => void dropped++);
  // A broken stdout (EPIPE) must not take the mirror down with it: the log is lost, the serving goes on.
  stream.on('error', () => undefined);
  return {
    stream,
    get dropped() {
      return dropped;
    },
    reportDrops(log) {
      const timer = setInterval(() => {
        if (dropped === 0) return;
        const count = dropped;
        dropped = 0;
        // If this line is dropped too, its count comes back and goes out with the next report.
        const before = dropped;
        log.warn({ dropped: count }, 'log lines dropped: stdout is read slower than it is written');
        if (dropped > before) dropped += count;
      }, DROP_REPORT_MS);
      timer.unref();
    },
    flushSync() {
      try {
        stream.flushSync();
      } catch {
        // The reader is gone or still full: nothing more can be done at exit.
      }
    },
  };
}
