// Work that takes turns: at most `width` at once, the rest in arrival order. Two users:
// - the store's fsyncs, one at a time. An fsync holds one of libuv's four threadpool threads for as long as the
//   disk takes (tens of ms while other files' dirty pages are written back), and the same threads serve every
//   temp-file read of the clients following a download and every LevelDB call. Three 20 MB layers committing at
//   once left one thread for all of that (issue 16, bench/TRACE-cold.md);
// - blob prefetch, `cache.prefetchBlobs` downloads at a time (prefetch.ts).

export class Lane {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly width = 1) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.width) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The turn passes straight to the next in line (running stays the same), else one lane frees up.
      if (next) next();
      else this.running--;
    }
  }
}
