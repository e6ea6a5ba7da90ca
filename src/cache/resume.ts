// Upstream's body of one blob, resumed with a Range request from the last byte received when the connection
// breaks (Docker Hub's CDN does drop long downloads). The writer verifies the whole blob whatever the pieces.
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';
import type { Digest, Repository } from '../registry/reference.js';
import type { Upstream, UpstreamBlob } from '../upstream/upstream.js';

/** Range requests after a broken upstream body, per download. */
export const MAX_RESUMES = 3;

export interface ResumeDeps {
  upstream: Upstream;
  metrics: Metrics;
  log: Logger;
}

/** `first` (upstream's answer to the download's GET), continued from upstream as often as MAX_RESUMES allows. */
export function resumingBody(deps: ResumeDeps, repo: Repository, digest: Digest, first: UpstreamBlob, signal: AbortSignal): Readable {
  return Readable.from(resuming(deps, repo, digest, first, signal));
}

async function* resuming(deps: ResumeDeps, repo: Repository, digest: Digest, first: UpstreamBlob, signal: AbortSignal): AsyncGenerator<Buffer> {
  let body = first.body;
  let received = 0;
  for (let resumes = 0; ; resumes++) {
    const broken = yield* untilBroken(body, (bytes) => (received += bytes));
    if (broken === undefined) return;
    const resumable = first.size !== undefined && received > 0 && received < first.size;
    if (signal.aborted || !resumable || resumes >= MAX_RESUMES) throw broken.error;
    deps.log.warn({ err: broken.error, digest, received, resumes }, 'upstream body broke, resuming');
    deps.metrics.fillResumes.inc();
    const rest = await deps.upstream.fetchBlob(repo, digest, { offset: received, signal });
    if (!rest) throw broken.error;
    body = rest.body;
  }
}

/**
 * The body's chunks, and at the end either undefined or how the body broke. Only the body's own failure counts:
 * an error thrown in by the consumer (the writer failed, e.g. a full disk) ends the download without a resume.
 */
async function* untilBroken(body: Readable, onChunk: (bytes: number) => void): AsyncGenerator<Buffer, { error: unknown } | undefined> {
  const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        return { error };
      }
      if (next.done) return undefined;
      onChunk(next.value.length);
      yield next.value;
    }
  } finally {
    body.destroy();
  }
}
