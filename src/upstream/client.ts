// The undici-backed Upstream: one keep-alive Pool to the registry origin, bearer tokens per repository scope,
// blob redirects (Docker Hub's CDN) followed on a separate agent that never carries the registry's token.
import { createHash } from 'node:crypto';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { tryParseManifest } from '../registry/manifest.js';
import { DOCKER_MANIFEST_V1_SIGNED } from '../registry/media-types.js';
import { isDigest, type Digest, type Repository } from '../registry/reference.js';
import { TokenCache } from './auth.js';
import { CircuitBreaker } from './breaker.js';
import type { RateLimitTracker } from './rate-limit.js';
import { discard, readCapped } from './body.js';
import { acceptHeader, contentLength, errorFrom, isRedirect, mediaTypeOf, single } from './response.js';
import { UpstreamBusyError, UpstreamContentError, UpstreamError } from './errors.js';
import type { FetchedManifest, ManifestHead, ManifestRequest, TagList, Upstream, UpstreamBlob } from './upstream.js';

/** distribution refuses manifests over 4 MiB; so do we. */
const MANIFEST_LIMIT = 4 * 2 ** 20;
const TAG_LIST_LIMIT = 16 * 2 ** 20;
const MAX_REDIRECTS = 5;
/**
 * Requests that may wait for a free connection, per connection: beyond that an upstream stall would queue every
 * client behind it without bound, so the rest are refused at once (issue 14, finding 6).
 */
const QUEUE_PER_CONNECTION = 4;
/**
 * At shutdown the server has already waited `shutdownTimeout` for its clients: what still runs upstream has no
 * one to answer (background revalidations, stalled requests), so the pool gets this long, then is destroyed.
 */
const CLOSE_GRACE_MS = 500;
/** Statuses that speak for the whole origin (its proxy or load balancer), not for one repository. */
const HOST_FAILURES = new Set([502, 503, 504]);

type Kind = 'manifest' | 'blob' | 'tags';

interface Send {
  kind: Kind;
  method: 'GET' | 'HEAD';
  path: string;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

export class RegistryClient implements Upstream {
  readonly name: string;
  private readonly pool: Pool;
  /** Other origins: the token realm and blob redirect targets. */
  private readonly agent: Agent;
  private readonly tokens: TokenCache;
  readonly breaker: CircuitBreaker;
  private readonly queueLimit: number;

  constructor(
    private readonly config: UpstreamConfig,
    private readonly metrics: Metrics,
    private readonly rateLimit: RateLimitTracker,
    now: () => number = Date.now,
  ) {
    this.name = config.name;
    const timeouts = {
      connectTimeout: config.connectTimeout,
      headersTimeout: config.headersTimeout,
      bodyTimeout: config.bodyTimeout,
    };
    this.pool = new Pool(config.url, { connections: config.connections, ...timeouts });
    this.queueLimit = config.connections * QUEUE_PER_CONNECTION;
    this.agent = new Agent({ connections: config.connections, ...timeouts });
    this.tokens = new TokenCache(this.agent, {
      upstream: config.url,
      credentials: config.credentials,
      trustedRealms: config.authRealms,
      now,
    });
    this.breaker = new CircuitBreaker(config.breakerFailures, config.breakerCooldown, metrics, now, config.name);
  }

  async resolveManifest(repo: Repository, reference: string, request: ManifestRequest): Promise<ManifestHead | undefined> {
    const response = await this.send(repo, {
      kind: 'manifest',
      method: 'HEAD',
      path: `/v2/${repo}/manifests/${reference}`,
      headers: acceptHeader(request.accept),
      signal: request.signal,
    });
    discard(response.body);
    if (response.statusCode === 404) return undefined;
    const header = single(response.headers['docker-content-digest']);
    return {
      digest: header !== undefined && isDigest(header) ? header : undefined,
      mediaType: mediaTypeOf(response.headers),
      size: Number(single(response.headers['content-length']) ?? 0),
    };
  }

  async fetchManifest(repo: Repository, reference: string, request: ManifestRequest): Promise<FetchedManifest | undefined> {
    // Docker Hub refused pulls a moment ago: asking again spends nothing but time.
    const limitedFor = this.rateLimit.limitedForSeconds();
    if (limitedFor > 0) {
      throw new UpstreamError('upstream pull limit reached', { status: 429, retryAfterSeconds: limitedFor });
    }
    const response = await this.send(repo, {
      kind: 'manifest',
      method: 'GET',
      path: `/v2/${repo}/manifests/${reference}`,
      headers: acceptHeader(request.accept),
      signal: request.signal,
    });
    if (response.statusCode === 404) {
      discard(response.body);
      return undefined;
    }
    const bytes = await readCapped(response.body, MANIFEST_LIMIT, false);
    let mediaType = mediaTypeOf(response.headers);
    if (mediaType === '' || mediaType === 'application/json' || mediaType === 'text/plain') {
      mediaType = tryParseManifest(bytes)?.mediaType ?? DOCKER_MANIFEST_V1_SIGNED;
    }
    const announced = single(response.headers['docker-content-digest']);
    const expected = isDigest(reference) ? reference : announced !== undefined && isDigest(announced) ? announced : undefined;
    const digest = computeDigest(bytes, expected ?? 'sha256:');
    // A signed schema1 manifest's announced digest covers its payload without the signatures, not these bytes;
    // we key it by the bytes we store instead.
    if (expected !== undefined && digest !== expected && mediaType !== DOCKER_MANIFEST_V1_SIGNED) {
      throw new UpstreamContentError(`manifest ${repo}@${reference}: upstream sent ${digest}, expected ${expected}`);
    }
    return { digest, mediaType, bytes };
  }

  async statBlob(
    repo: Repository,
    digest: Digest,
    options: { signal?: AbortSignal | undefined },
  ): Promise<{ size: number | undefined; mediaType: string | undefined } | undefined> {
    const response = await this.blobRequest(repo, digest, 'HEAD', {}, options.signal);
    if (!response) return undefined;
    discard(response.body);
    return { size: contentLength(response), mediaType: single(response.headers['content-type']) };
  }

  async fetchBlob(
    repo: Repository,
    digest: Digest,
    options: { offset?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<UpstreamBlob | undefined> {
    const headers: Record<string, string> = options.offset ? { range: `bytes=${options.offset}-` } : {};
    const response = await this.blobRequest(repo, digest, 'GET', headers, options.signal);
    if (!response) return undefined;
    const resumedAt = /^bytes (\d+)-/.exec(single(response.headers['content-range']) ?? '')?.[1];
    if (options.offset && (response.statusCode !== 206 || Number(resumedAt) !== options.offset)) {
      discard(response.body);
      throw new UpstreamError(`blob ${digest}: upstream did not resume at byte ${options.offset}`, { status: 502 });
    }
    return { size: contentLength(response), mediaType: single(response.headers['content-type']), body: response.body };
  }

  /** A blob request, following redirects (Docker Hub's CDN); undefined for 404, other statuses throw. */
  private async blobRequest(
    repo: Repository,
    digest: Digest,
    method: 'GET' | 'HEAD',
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Dispatcher.ResponseData | undefined> {
    let url = new URL(`/v2/${repo}/blobs/${digest}`, this.config.url);
    let response = await this.send(repo, { kind: 'blob', method, path: url.pathname, headers, signal });
    for (let hop = 0; isRedirect(response.statusCode); hop++) {
      const location = single(response.headers.location);
      discard(response.body);
      if (!location || hop >= MAX_REDIRECTS) {
        throw new UpstreamError(`blob ${digest}: bad redirect from upstream`, { status: 502 });
      }
      url = new URL(location, url);
      // The redirect target is another host (Docker Hub's CDN): it never gets the registry's token.
      response = await this.dispatch(this.agent, 'blob', {
        origin: url.origin,
        path: url.pathname + url.search,
        method,
        headers,
        signal,
      });
    }
    if (response.statusCode === 404) {
      discard(response.body);
      return undefined;
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      throw await errorFrom(response, `blob ${digest}`);
    }
    return response;
  }

  async listTags(repo: Repository, query: string, options: { signal?: AbortSignal | undefined }): Promise<TagList | undefined> {
    const response = await this.send(repo, {
      kind: 'tags',
      method: 'GET',
      path: `/v2/${repo}/tags/list${query}`,
      signal: options.signal,
    });
    if (response.statusCode === 404) {
      discard(response.body);
      return undefined;
    }
    // A body that stalls or runs past the cap is upstream failing, like any other: the cached tags can answer.
    const body = await readCapped(response.body, TAG_LIST_LIMIT, false).catch((cause: unknown) => {
      if (options.signal?.aborted) throw cause;
      throw new UpstreamError(`tags of ${repo}: upstream sent no usable list`, { status: 502, cause });
    });
    return { body, link: single(response.headers.link) };
  }

  /** Lets requests in flight finish for up to graceMs, then destroys the connections: close never waits on a stall. */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    const closing = Promise.all([this.pool.close(), this.agent.close()]);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
    const outcome = await Promise.race([closing, graceOver]);
    clearTimeout(timer);
    if (outcome === 'late') await Promise.all([this.pool.destroy(), this.agent.destroy()]);
    void closing.catch(() => undefined); // settles, or not, once destroyed: nothing is left to wait for
  }

  /** One request to the registry origin, with a bearer token when needed; non-2xx/404/3xx statuses throw. */
  private async send(repo: Repository, request: Send): Promise<Dispatcher.ResponseData> {
    // Before the breaker: a full queue is our load, not upstream's health, and must not take a half-open trial.
    const queued = this.pool.stats.queued;
    if (queued >= this.queueLimit) throw new UpstreamBusyError(queued);
    const trial = this.breaker.check();
    try {
      const response = await this.authorized(repo, request);
      this.breaker.success();
      return response;
    } catch (err) {
      // Refused, reset, timed out, 502/503/504: the host is in trouble. Another 5xx concerns that repository
      // (the breaker counts each repository once). A 4xx (429 included) is an answer: upstream is up. Every
      // outcome settles the breaker, or a half-open trial that got a 429 would hold it shut for good.
      if (request.signal?.aborted || !(err instanceof UpstreamError)) {
        if (trial) this.breaker.release();
      } else if (err.status === undefined || HOST_FAILURES.has(err.status)) {
        this.breaker.failure();
      } else if (err.status >= 500) {
        this.breaker.failure(repo);
      } else {
        this.breaker.success();
      }
      throw err;
    }
  }

  private async authorized(repo: Repository, request: Send): Promise<Dispatcher.ResponseData> {
    const scope = `repository:${repo}:pull`;
    const options = { path: request.path, method: request.method, headers: { ...request.headers }, signal: request.signal };
    const authorization = await this.tokens.authorization(scope, request.signal);
    if (authorization) options.headers.authorization = authorization;
    let response = await this.dispatch(this.pool, request.kind, options);
    if (response.statusCode === 401) {
      const renewed = await this.tokens.renew(scope, response.headers['www-authenticate'], request.signal);
      if (renewed) {
        discard(response.body);
        options.headers.authorization = renewed;
        response = await this.dispatch(this.pool, request.kind, options);
      }
    }
    if (request.kind === 'manifest') this.rateLimit.observe(response.headers, { method: request.method, status: response.statusCode });
    const status = response.statusCode;
    if ((status >= 200 && status < 300) || status === 404 || isRedirect(status)) return response;
    const error = await errorFrom(response, `${request.method} ${request.path}`);
    if (status !== 429) throw error;
    const retryAfterSeconds = this.rateLimit.limited(error.retryAfterSeconds);
    throw new UpstreamError(error.message, { status, errors: [...error.errors], retryAfterSeconds });
  }

  private async dispatch(
    dispatcher: Dispatcher,
    kind: Kind,
    options: Dispatcher.RequestOptions | Omit<Dispatcher.RequestOptions, 'origin'>,
  ): Promise<Dispatcher.ResponseData> {
    try {
      const response = await dispatcher.request(options as Dispatcher.RequestOptions);
      this.metrics.upstreamRequests.inc({ registry: this.name, kind, method: options.method, status: String(response.statusCode) });
      return response;
    } catch (cause) {
      this.metrics.upstreamRequests.inc({ registry: this.name, kind, method: options.method, status: 'error' });
      if (options.signal && (options.signal as AbortSignal).aborted) throw cause;
      // Not logged here: whoever handles the error logs it once.
      throw new UpstreamError(`upstream unreachable: ${(cause as Error).message}`, { cause });
    }
  }
}

function computeDigest(bytes: Buffer, like: string): Digest {
  const algorithm = like.startsWith('sha512:') ? 'sha512' : 'sha256';
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}





