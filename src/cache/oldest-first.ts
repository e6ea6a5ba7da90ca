// Eviction's choice without sorting the index (issue 16, point 4): the least recently accessed records whose sizes
// add up to the bytes wanted, kept in a max-heap by access time while the records stream past. Memory grows with
// what will be evicted, not with the cache (sorting a million records took ~150 MiB and a second of one core).
import type { Digest } from '../registry/reference.js';

export interface EvictionCandidate {
  digest: Digest;
  size: number;
  /** Last access, ms. */
  at: number;
}

export class OldestFirst {
  /** A max-heap on `at`: the newest of the chosen is on top, first to go when older ones are enough. */
  private readonly heap: EvictionCandidate[] = [];
  private bytes = 0;

  constructor(private readonly target: number) {}

  offer(c: EvictionCandidate): void {
    const top = this.heap[0];
    if (top && this.bytes >= this.target && c.at >= top.at) return;
    this.push(c);
    this.bytes += c.size;
    // Drop the newest while the older ones still add up to the target.
    for (let newest = this.heap[0]; newest && this.bytes - newest.size >= this.target; newest = this.heap[0]) {
      this.pop();
      this.bytes -= newest.size;
    }
  }

  /** The chosen candidates, oldest first (as a sort of every record by access time would list them). */
  take(): EvictionCandidate[] {
    return [...this.heap].sort((a, b) => a.at - b.at);
  }

  private push(c: EvictionCandidate): void {
    const heap = this.heap;
    heap.push(c);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as EvictionCandidate).at >= c.at) break;
      heap[i] = heap[parent] as EvictionCandidate;
      i = parent;
    }
    heap[i] = c;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (!last || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && (heap[right] as EvictionCandidate).at > (heap[left] as EvictionCandidate).at ? right : left;
      if ((heap[child] as EvictionCandidate).at <= last.at) break;
      heap[i] = heap[child] as EvictionCandidate;
      i = child;
    }
    heap[i] = last;
  }
}
