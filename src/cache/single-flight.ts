// Concurrent callers for one key share one promise: the first starts the work, the others wait for it.

export class SingleFlight<K, V> {
  private readonly running = new Map<K, Promise<V>>();

  /** Runs `work` unless it already runs for `key`; `shared` tells the caller whether it joined another's call. */
  async do(key: K, work: () => Promise<V>): Promise<{ value: V; shared: boolean }> {
    const running = this.running.get(key);
    if (running) return { value: await running, shared: true };
    const started = work().finally(() => this.running.delete(key));
    this.running.set(key, started);
    return { value: await started, shared: false };
  }

  get size(): number {
    return this.running.size;
  }
}
