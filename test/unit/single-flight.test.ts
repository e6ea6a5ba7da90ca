// SingleFlight: concurrent callers for one key share one run of the work; settled runs are not remembered.
import { describe, expect, it } from 'vitest';
import { SingleFlight } from '../../src/cache/single-flight.js';

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SingleFlight', () => {
  it('runs the work once for 20 concurrent callers of one key and gives all of them its value', async () => {
    const flight = new SingleFlight<string, string>();
    const gate = deferred<string>();
    let runs = 0;
    const work = (): Promise<string> => {
      runs++;
      return gate.promise;
    };
    const calls = Array.from({ length: 20 }, () => flight.do('sha256:x', work));
    expect(flight.size).toBe(1);
    gate.resolve('value');
    const results = await Promise.all(calls);
    expect(runs).toBe(1);
    expect(results.map((r) => r.value)).toEqual(Array(20).fill('value'));
    expect(results.filter((r) => r.shared)).toHaveLength(19);
    expect(results[0]?.shared).toBe(false);
    expect(flight.size).toBe(0);
  });

  it('rejects every waiter when the work rejects, and runs the work again on the next call', async () => {
    const flight = new SingleFlight<string, number>();
    const gate = deferred<number>();
    const failure = new Error('upstream down');
    let runs = 0;
    const calls = Array.from({ length: 20 }, () =>
      flight.do('k', () => {
        runs++;
        return gate.promise;
      }),
    );
    gate.reject(failure);
    const settled = await Promise.allSettled(calls);
    expect(settled.every((s) => s.status === 'rejected' && s.reason === failure)).toBe(true);
    expect(runs).toBe(1);
    expect(flight.size).toBe(0);

    const retry = await flight.do('k', () => {
      runs++;
      return Promise.resolve(7);
    });
    expect(retry).toEqual({ value: 7, shared: false });
    expect(runs).toBe(2);
  });

  it('runs the work again for a call made after an earlier run resolved', async () => {
    const flight = new SingleFlight<string, number>();
    let runs = 0;
    const work = (): Promise<number> => Promise.resolve(++runs);
    expect(await flight.do('k', work)).toEqual({ value: 1, shared: false });
    expect(await flight.do('k', work)).toEqual({ value: 2, shared: false });
  });

  it('runs different keys independently: one settles while the other is still running', async () => {
    const flight = new SingleFlight<string, string>();
    const slow = deferred<string>();
    const runs: string[] = [];
    const a = flight.do('a', () => {
      runs.push('a');
      return slow.promise;
    });
    const b = flight.do('b', () => {
      runs.push('b');
      return Promise.resolve('b-value');
    });
    expect(flight.size).toBe(2);
    expect(await b).toEqual({ value: 'b-value', shared: false });
    expect(flight.size).toBe(1);
    slow.resolve('a-value');
    expect(await a).toEqual({ value: 'a-value', shared: false });
    expect(runs).toEqual(['a', 'b']);
    expect(flight.size).toBe(0);
  });

  it('does not let a failure for one key reach the callers of another', async () => {
    const flight = new SingleFlight<string, string>();
    const failing = flight.do('bad', () => Promise.reject(new Error('boom')));
    const fine = flight.do('good', () => Promise.resolve('ok'));
    await expect(failing).rejects.toThrow('boom');
    await expect(fine).resolves.toEqual({ value: 'ok', shared: false });
  });

  it('lets a caller that goes away stop waiting, and keeps the work going for the others', async () => {
    const flight = new SingleFlight<string, string>();
    let release: (v: string) => void = () => undefined;
    let workSignal: AbortSignal | undefined;
    const work = (signal: AbortSignal) => {
      workSignal = signal;
      return new Promise<string>((resolve) => (release = resolve));
    };
    const leaving = new AbortController();
    const first = flight.do('k', work, leaving.signal);
    const second = flight.do('k', work);
    leaving.abort(new Error('client went away'));
    await expect(first).rejects.toThrow('client went away');
    expect(workSignal?.aborted).toBe(false);
    release('done');
    expect(await second).toEqual({ value: 'done', shared: true });
  });

  it('aborts the work once every caller has gone', async () => {
    const flight = new SingleFlight<string, string>();
    let workSignal: AbortSignal | undefined;
    const work = (signal: AbortSignal) => {
      workSignal = signal;
      return new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const a = new AbortController();
    const b = new AbortController();
    const calls = [flight.do('k', work, a.signal), flight.do('k', work, b.signal)];
    a.abort(new Error('a left'));
    await expect(calls[0]).rejects.toThrow('a left');
    expect(workSignal?.aborted).toBe(false);
    b.abort(new Error('b left'));
    await expect(calls[1]).rejects.toThrow('b left');
    expect(workSignal?.aborted).toBe(true);
    expect(flight.size).toBe(0);
  });

  it('starts afresh for a caller that arrives after every earlier one left, while the aborted work winds down', async () => {
    const flight = new SingleFlight<string, string>();
    let runs = 0;
    const work = (signal: AbortSignal) => {
      runs++;
      // The aborted run takes a while to notice; a new run succeeds.
      return runs === 1
        ? new Promise<string>((_, reject) => signal.addEventListener('abort', () => setImmediate(() => reject(new Error('aborted')))))
        : Promise.resolve('fresh');
    };
    const leaving = new AbortController();
    const first = flight.do('k', work, leaving.signal);
    leaving.abort(new Error('client went away'));
    await expect(first).rejects.toThrow('client went away');
    expect(await flight.do('k', work)).toEqual({ value: 'fresh', shared: false });
    expect(runs).toBe(2);
  });
});
