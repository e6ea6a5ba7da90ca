// Concurrent callers for one key share one promise: the first starts the work, the others wait for it. A caller
// that goes away (its signal aborts) stops waiting at once; the work itself is aborted only when every caller
// has gone, so one client hanging up never cancels what another still waits for.

interface Flight<V> {
  promise: Promise<V>;
  controller: AbortController;
  waiting: number;
}

export class SingleFlight<K, V> {
  private readonly running = new Map<K, Flight<V>>();

  /** Runs `work` unless it already runs for `key`; `shared` tells the caller whether it joined another's call. */
  async do(key: K, work: (signal: AbortSignal) => Promise<V>, signal?: AbortSignal): Promise<{ value: V; shared: boolean }> {
    signal?.throwIfAborted();
    let flight = this.running.get(key);
    const shared = flight !== undefined;
    if (!flight) {
      const controller = new AbortController();
      const started: Flight<V> = { controller, waiting: 0, promise: work(controller.signal) };
      started.promise = started.promise.finally(() => this.forget(key, started));
      // Every caller may have gone before it settles: its failure then has no one to reach.
      started.promise.catch(() => undefined);
      this.running.set(key, started);
      flight = started;
    }
    flight.waiting++;
    try {
      return { value: await (signal ? untilAborted(flight.promise, signal) : flight.promise), shared };
    } finally {
      flight.waiting--;
      if (flight.waiting === 0 && signal?.aborted) {
        // Gone from the map first: a caller arriving while the aborted work winds down starts afresh.
        this.forget(key, flight);
        flight.controller.abort(signal.reason);
      }
    }
  }

  private forget(key: K, flight: Flight<V>): void {
    if (this.running.get(key) === flight) this.running.delete(key);
  }

  get size(): number {
    return this.running.size;
  }
}

function untilAborted<V>(promise: Promise<V>, signal: AbortSignal): Promise<V> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
