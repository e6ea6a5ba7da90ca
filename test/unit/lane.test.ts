// Lane: work takes turns (the store's fsyncs, blob prefetch) (at most `width` at once, in arrival order), and a failed one frees its turn.
import { describe, expect, it } from 'vitest';
import { Lane } from '../../src/cache/lane.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Lane', () => {
  it('runs one fsync at a time by default, the waiting ones in the order they came', async () => {
    const lane = new Lane();
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      lane.run(async () => {
        started.push(i);
        await gate.promise;
        return i;
      }),
    );
    await turn();
    expect(started).toEqual([0]);
    gates[0]?.resolve();
    await turn();
    expect(started).toEqual([0, 1]);
    gates[1]?.resolve();
    gates[2]?.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(started).toEqual([0, 1, 2]);
  });

  it('runs up to its width at once', async () => {
    const lane = new Lane(2);
    const gates = [deferred(), deferred(), deferred()];
    let running = 0;
    let most = 0;
    const runs = gates.map((gate) =>
      lane.run(async () => {
        most = Math.max(most, ++running);
        await gate.promise;
        running--;
      }),
    );
    await turn();
    expect(running).toBe(2);
    for (const gate of gates) gate.resolve();
    await Promise.all(runs);
    expect(most).toBe(2);
  });

  it('passes a failure to its caller and the turn to the next one', async () => {
    const lane = new Lane();
    const failure = new Error('EIO');
    const failed = lane.run(() => Promise.reject(failure));
    const next = lane.run(() => Promise.resolve('synced'));
    await expect(failed).rejects.toBe(failure);
    expect(await next).toBe('synced');
    // Nothing is left holding the lane: a later call runs at once.
    expect(await lane.run(() => Promise.resolve('again'))).toBe('again');
  });
});
