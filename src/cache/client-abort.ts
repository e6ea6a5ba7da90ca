// What a request lends the cache: its AbortSignal, read only where work done for it reaches upstream. Making the
// signal costs an AbortController and a 'close' listener, which a request answered from cache never needs, so
// the HTTP layer passes its request context (whose `signal` is made on first read), not the signal itself.

export interface ClientAbort {
  readonly signal?: AbortSignal | undefined;
  /** The client's address, for its share of the pull allowance (cache/pull-budget.ts). */
  readonly address?: string | undefined;
}

/** No client to follow: the cache's own work (seed, background revalidation, prefetch). */
export const DETACHED: ClientAbort = {};
