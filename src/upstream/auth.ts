// Bearer-token auth for the registry token protocol (Docker "Token Authentication Specification"):
// parse and check the 401 challenge, fetch a token per scope from the realm, keep it (bounded) until shortly
// before it expires, and decide which realms may see the credentials.
import type { Dispatcher } from 'undici';
import { readCapped } from './body.js';
import { UpstreamError } from './errors.js';
import { DEFAULT_TOKEN_LIMITS, TokenStore, type TokenStoreLimits } from './token-store.js';

export interface BearerChallenge {
  realm: string;
  service: string | undefined;
  scope: string | undefined;
}

/** Parses `Bearer realm="…",service="…",scope="…"`; undefined for other schemes. */
export function parseBearerChallenge(header: string | string[] | undefined): BearerChallenge | undefined {
  const value = Array.isArray(header) ? header.find((h) => /^bearer\s/i.test(h)) : header;
  if (!value || !/^bearer\s/i.test(value)) return undefined;
  const params = new Map<string, string>();
  for (const match of value.slice(7).matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params.set((match[1] ?? '').toLowerCase(), (match[2] ?? match[3] ?? '').replace(/\\(.)/g, '$1'));
  }
  const realm = params.get('realm');
  if (!realm) return undefined;
  return { realm, service: params.get('service'), scope: params.get('scope') };
}

/** Tokens live this much shorter than upstream says, so none expires in flight. */
const EXPIRY_SKEW_MS = 30_000;
/** Token spec: a token without expires_in is good for 60 s. */
const DEFAULT_EXPIRES_IN_S = 60;

export interface Credentials {
  username: string;
  password: string;
}

export interface TokenCacheOptions {
  /** The registry origin, e.g. https://registry-1.docker.io: a realm on exactly this origin may receive credentials. */
  upstream: string;
  credentials?: Credentials | undefined;
  /** Further realm hosts (host or host:port) trusted with the credentials. */
  trustedRealms?: readonly string[];
  limits?: TokenStoreLimits;
  now?: () => number;
}

/**
 * The realm of a challenge as a URL, or undefined when it is none we may ask: not parseable, or not http(s)
 * (`file:`, `data:`…). Checked before a challenge is used or kept (issue 14, finding 7).
 */
export function realmUrl(realm: string): URL | undefined {
  if (!URL.canParse(realm)) return undefined;
  const url = new URL(realm);
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  return url;
}

export class TokenCache {
  readonly tokens: TokenStore;
  private readonly pending = new Map<string, Promise<string>>();
  /**
   * The upstream's challenge, so later scopes get a token before their first request. Kept only once a token
   * came from it: a bad or unreachable realm in one 401 never replaces a challenge that works.
   */
  private challenge: BearerChallenge | undefined;
  private readonly now: () => number;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly options: TokenCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.tokens = new TokenStore(options.limits ?? DEFAULT_TOKEN_LIMITS, this.now);
  }

  /** The Authorization header for a scope, when the upstream is known to want one. */
  async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    const cached = this.tokens.get(tokenKey(challenge, scope));
    if (cached !== undefined) return `Bearer ${cached}`;
    try {
      return `Bearer ${await this.fetchToken(challenge, scope, signal)}`;
    } catch (err) {
      // The realm learnt earlier fails now: ask without a token, and upstream's 401 names the current one.
      if (signal?.aborted) throw err;
      return undefined;
    }
  }

  /** After a 401: check the challenge, drop the stale token, and fetch a fresh one. Undefined: not bearer auth. */
  async renew(scope: string, header: string | string[] | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const parsed = parseBearerChallenge(header);
    if (!parsed) return undefined;
    if (!realmUrl(parsed.realm)) {
      throw new UpstreamError('upstream sent a token challenge with an unusable realm', { status: 502 });
    }
    const challenge = { realm: parsed.realm, service: parsed.service, scope: undefined };
    this.tokens.delete(tokenKey(challenge, scope));
    const token = await this.fetchToken(challenge, scope, signal);
    this.challenge = challenge;
    return `Bearer ${token}`;
  }

  /**
   * One token request per key, shared by every caller: it takes no caller's signal (the first client hanging up
   * must not fail the others; the dispatcher's timeouts bound it), while each caller stops waiting on its own.
   */
  private fetchToken(challenge: BearerChallenge, scope: string, signal?: AbortSignal): Promise<string> {
    const key = tokenKey(challenge, scope);
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.requestToken(challenge, scope, key).finally(() => this.pending.delete(key));
      pending.catch(() => undefined); // every caller may have gone: its failure then reaches no one
      this.pending.set(key, pending);
    }
    return signal ? untilAborted(pending, signal) : pending;
  }

  private async requestToken(challenge: BearerChallenge, scope: string, key: string): Promise<string> {
    const url = realmUrl(challenge.realm);
    if (!url) throw new UpstreamError('upstream sent a token challenge with an unusable realm', { status: 502 });
    if (challenge.service) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', scope);
    const credentials = this.options.credentials;
    const headers: Record<string, string> =
      credentials && realmTrusted(url, this.options)
        ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
        : {};
    const response = await this.dispatcher
      .request({ origin: url.origin, path: url.pathname + url.search, method: 'GET', headers })
      .catch((cause: unknown) => {
        throw new UpstreamError(`token request to ${url.origin} failed`, { cause });
      });
    const body = await readCapped(response.body);
    if (response.statusCode !== 200) {
      // 401 here means our credentials were refused: to clients that is upstream trouble, not theirs.
      throw new UpstreamError(`token endpoint answered ${response.statusCode}`, { status: response.statusCode });
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch (cause) {
      throw new UpstreamError('token endpoint sent no JSON', { status: 502, cause });
    }
    const token = typeof parsed.token === 'string' ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new UpstreamError('token endpoint sent no token', { status: 502 });
    }
    const expiresIn = typeof parsed.expires_in === 'number' ? parsed.expires_in : DEFAULT_EXPIRES_IN_S;
    this.tokens.set(key, token, this.now() + Math.max(0, expiresIn * 1000 - EXPIRY_SKEW_MS));
    return token;
  }
}

function untilAborted<V>(promise: Promise<V>, signal: AbortSignal): Promise<V> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Tokens are per realm and service as well as scope: one realm's token is never offered for another's. */
function tokenKey(challenge: BearerChallenge, scope: string): string {
  return `${challenge.realm}\n${challenge.service ?? ''}\n${scope}`;
}

/** Docker Hub's registry hosts, whose token realm is auth.docker.io: the one realm trusted off-origin unlisted. */
const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);
const DOCKER_HUB_REALM = 'https://auth.docker.io';

/**
 * Credentials go only to a realm on exactly the upstream's origin (scheme, host and port), to a host listed in
 * config, or to auth.docker.io for Docker Hub; and never in clear text when upstream itself uses TLS. No
 * "registrable domain" guess: `co.uk`, `azurecr.io` or `amazonaws.com` are shared by strangers (issue 14, finding 8).
 */
export function realmTrusted(realm: URL, options: Pick<TokenCacheOptions, 'upstream' | 'trustedRealms'>): boolean {
  const upstream = new URL(options.upstream);
  if (upstream.protocol === 'https:' && realm.protocol !== 'https:') return false;
  if (realm.origin === upstream.origin) return true;
  if (options.trustedRealms?.includes(realm.host)) return true;
  return upstream.protocol === 'https:' && DOCKER_HUB_HOSTS.has(upstream.hostname) && realm.origin === DOCKER_HUB_REALM;
}
