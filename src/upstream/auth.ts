// Bearer-token auth for the registry token protocol (Docker "Token Authentication Specification"):
// parse the 401 challenge, fetch a token per scope from the realm, cache it until shortly before it expires.
import type { Dispatcher } from 'undici';
import { readCapped } from './body.js';
import { UpstreamError } from './errors.js';

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

interface CachedToken {
  token: string;
  expiresAt: number;
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
  /** The registry origin, e.g. https://registry-1.docker.io: realms in its domain may receive credentials. */
  upstream: string;
  credentials?: Credentials | undefined;
  /** Further realm hosts (host or host:port) trusted with the credentials. */
  trustedRealms?: readonly string[];
  now?: () => number;
}

export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();
  /** The upstream's challenge, learnt from its first 401, so later scopes get a token before their first request. */
  private challenge: BearerChallenge | undefined;
  private readonly now: () => number;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly options: TokenCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The Authorization header for a scope, when the upstream is known to want one. */
  async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    if (!this.challenge) return undefined;
    return `Bearer ${await this.fetchToken(this.challenge, scope, signal)}`;
  }

  /** After a 401: learn the challenge, drop the stale token, and fetch a fresh one. Undefined: not bearer auth. */
  async renew(scope: string, header: string | string[] | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = parseBearerChallenge(header);
    if (!challenge) return undefined;
    this.challenge = { realm: challenge.realm, service: challenge.service, scope: undefined };
    this.tokens.delete(scope);
    return `Bearer ${await this.fetchToken(challenge, scope, signal)}`;
  }

  private fetchToken(challenge: BearerChallenge, scope: string, signal?: AbortSignal): Promise<string> {
    let pending = this.pending.get(scope);
    if (!pending) {
      pending = this.requestToken(challenge, scope, signal).finally(() => this.pending.delete(scope));
      this.pending.set(scope, pending);
    }
    return pending;
  }

  private async requestToken(challenge: BearerChallenge, scope: string, signal?: AbortSignal): Promise<string> {
    const url = new URL(challenge.realm);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', scope);
    const credentials = this.options.credentials;
    const headers: Record<string, string> =
      credentials && realmTrusted(url, this.options)
        ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
        : {};
    const response = await this.dispatcher
      .request({ origin: url.origin, path: url.pathname + url.search, method: 'GET', headers, signal })
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
    this.tokens.set(scope, { token, expiresAt: this.now() + Math.max(0, expiresIn * 1000 - EXPIRY_SKEW_MS) });
    return token;
  }
}

/**
 * Credentials go only to a realm on the upstream's own host, in its registrable domain (auth.docker.io for
 * registry-1.docker.io), or listed in config; and never in clear text to a realm when upstream itself uses TLS.
 */
export function realmTrusted(realm: URL, options: Pick<TokenCacheOptions, 'upstream' | 'trustedRealms'>): boolean {
  const upstream = new URL(options.upstream);
  if (upstream.protocol === 'https:' && realm.protocol !== 'https:') return false;
  if (options.trustedRealms?.includes(realm.host)) return true;
  if (realm.hostname === upstream.hostname) return true;
  const domain = registrableDomain(upstream.hostname);
  return domain !== undefined && (realm.hostname === domain || realm.hostname.endsWith(`.${domain}`));
}

/** The last two labels of a DNS name (docker.io); undefined for IP addresses and single-label hosts. */
function registrableDomain(hostname: string): string | undefined {
  if (/^[\d.]+$/.test(hostname) || hostname.includes(':') || hostname.startsWith('[')) return undefined;
  const labels = hostname.split('.');
  return labels.length >= 2 ? labels.slice(-2).join('.') : undefined;
}
