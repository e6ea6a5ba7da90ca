// Owns: client authentication and access rules (issue 14): HTTP Basic against an htpasswd file, as
// distribution's htpasswd mode answers it (401 UNAUTHORIZED + `WWW-Authenticate: Basic realm=...`), which
// repositories anonymous clients and each user may pull, and a per-address limit on failed logins.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { AuthConfig } from '../config/schema.js';
import { RegistryError } from '../registry/errors.js';
import { canonicalRegistry } from '../registry/reference.js';
import { header, type RequestContext } from './context.js';
import { Htpasswd } from './htpasswd.js';

const CHALLENGE = { 'www-authenticate': 'Basic realm="regmirror"' } as const;
/**
 * A verified header is trusted this long without another bcrypt: a pull is ~50 requests with the same header,
 * and bcrypt costs ~100 ms each. The user's hash is still compared on every hit, so a changed password or a
 * removed user takes effect at the file's next check (a second), not after the TTL.
 */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_ENTRIES = 1000;
/** Failed logins allowed per client address per window; then 429 until the window ends. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 60_000;
/** Addresses remembered; the least recently failing go first, so memory stays bounded under a spray of addresses. */
const FAILURE_ENTRIES = 10_000;

/**
 * What a request asks for: the API root (`docker login` probes it), /metrics, the status page and its JSON API
 * (any user of the htpasswd file; never anonymous), or one repository.
 */
export type AuthTarget = { kind: 'root' } | { kind: 'metrics' } | { kind: 'status' } | { kind: 'repository'; registry: string; repo: string };

export interface ClientAuthOptions {
  config: AuthConfig;
  htpasswd: Htpasswd;
  log: Logger;
  /** The clock of the failure windows and the verified-header TTL; tests move it. */
  now?: () => number;
}

export class ClientAuth {
  /** Whether /metrics asks for credentials. */
  readonly guardsMetrics: boolean;
  private readonly anonymous: RegExp[];
  private readonly authenticated: RegExp[];
  private readonly users: Map<string, RegExp[]>;
  private readonly htpasswd: Htpasswd;
  private readonly log: Logger;
  private readonly now: () => number;
  /** sha256 of an Authorization header → the user and the hash it matched, until `expiresAt`. */
  private readonly verified = new LRUCache<string, { user: string; hash: string; expiresAt: number }>({ max: VERIFIED_ENTRIES });
  /** One bcrypt per header at a time: the 50 parallel requests of a cold pull share the first one's. */
  private readonly verifying = new Map<string, Promise<{ user: string; hash: string } | undefined>>();
  private readonly failures = new LRUCache<string, { count: number; since: number }>({ max: FAILURE_ENTRIES });

  constructor(options: ClientAuthOptions) {
    const { config } = options;
    this.guardsMetrics = config.metrics;
    this.anonymous = config.anonymous.map(compilePattern);
    this.authenticated = config.authenticated.map(compilePattern);
    this.users = new Map(Object.entries(config.users).map(([user, patterns]) => [user, patterns.map(compilePattern)]));
    this.htpasswd = options.htpasswd;
    this.log = options.log;
    this.now = options.now ?? Date.now;
  }

  /** Reads the htpasswd file (a missing one fails the start) and compiles the rules. */
  static async open(config: AuthConfig, log: Logger, now: () => number = Date.now): Promise<ClientAuth> {
    const htpasswd = await Htpasswd.open(config.htpasswd, log, now);
    return new ClientAuth({ config, htpasswd, log, now });
  }

  /**
   * Resolves when the request may go on; else throws the RegistryError to answer: 401 with the Basic challenge
   * (no or wrong credentials), 403 DENIED (a user outside the rules), 429 (too many failed logins). Resolves
   * with the user, or undefined for an anonymous client the rules let through.
   */
  async check(ctx: RequestContext, target: AuthTarget): Promise<string | undefined> {
    const authorization = header(ctx.req, 'authorization');
    if (authorization === undefined || !/^basic /i.test(authorization)) {
      // Anonymous. /v2/ always challenges, even when anonymous pulls are allowed: podman and dockerd send their
      // stored credentials only to a registry whose /v2/ asked for them, and a client without any pulls on.
      if (target.kind === 'repository' && matches(this.anonymous, target)) return undefined;
      // Outside the anonymous rules, 401 rather than 403: containerd sends credentials only after a challenge.
      throw unauthorized('authentication required');
    }
    // The client's address, not the socket's: behind http.workers the primary's socket is a Unix socket (no
    // address), and one shared bucket would let any client lock every other out with ten wrong passwords.
    const address = ctx.address ?? 'unknown';
    this.refuseIfLimited(address);
    const user = await this.authenticate(authorization);
    if (user === undefined) {
      this.recordFailure(address);
      ctx.log.info({ address }, 'client login failed');
      throw unauthorized('invalid username or password');
    }
    if (target.kind !== 'repository' || this.mayPull(user, target)) return user;
    throw new RegistryError('DENIED', 'requested access to the resource is denied', {
      detail: { name: `${target.registry}/${target.repo}` },
    });
  }

  /** Whether `user` may pull `repo` of `registry`: what the status page shows that user (issue 15). */
  allows(user: string, registry: string, repo: string): boolean {
    return this.mayPull(user, { kind: 'repository', registry, repo });
  }

  /** Whether `user` may pull from `target`: the anonymous rules, then everyone's, then the user's own. */
  private mayPull(user: string, target: Extract<AuthTarget, { kind: 'repository' }>): boolean {
    return matches(this.anonymous, target) || matches(this.authenticated, target) || matches(this.users.get(user) ?? [], target);
  }

  /** The user a Basic header names, if its password is right; cached by a hash of the header, never the header. */
  private async authenticate(authorization: string): Promise<string | undefined> {
    const key = createHash('sha256').update(authorization).digest('hex');
    const cached = this.verified.get(key);
    if (cached && cached.expiresAt > this.now()) {
      if ((await this.htpasswd.hashOf(cached.user)) === cached.hash) return cached.user;
      this.verified.delete(key);
    }
    let pending = this.verifying.get(key);
    if (!pending) {
      pending = this.verify(authorization).finally(() => this.verifying.delete(key));
      this.verifying.set(key, pending);
    }
    const result = await pending;
    if (!result) return undefined;
    this.verified.set(key, { ...result, expiresAt: this.now() + VERIFIED_TTL_MS });
    return result.user;
  }

  private async verify(authorization: string): Promise<{ user: string; hash: string } | undefined> {
    const decoded = Buffer.from(authorization.slice('basic '.length).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    const user = decoded.slice(0, colon);
    const hash = await this.htpasswd.verify(user, decoded.slice(colon + 1));
    return hash === undefined ? undefined : { user, hash };
  }

  private refuseIfLimited(address: string): void {
    const entry = this.failures.get(address);
    if (!entry) return;
    const left = entry.since + FAILURE_WINDOW_MS - this.now();
    if (left <= 0 || entry.count < MAX_FAILURES) return;
    throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins from this address', {
      headers: { 'retry-after': String(Math.ceil(left / 1000)) },
    });
  }

  private recordFailure(address: string): void {
    const now = this.now();
    const old = this.failures.get(address);
    const entry = old && now - old.since < FAILURE_WINDOW_MS ? old : { count: 0, since: now };
    entry.count++;
    this.failures.set(address, entry);
    if (entry.count === MAX_FAILURES) this.log.warn({ address }, 'failed logins limited for this address');
  }
}

function unauthorized(message: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, { headers: { ...CHALLENGE } });
}

function matches(patterns: readonly RegExp[], target: { registry: string; repo: string }): boolean {
  const name = `${target.registry}/${target.repo}`;
  return patterns.some((p) => p.test(name));
}

/**
 * `*` matches anything, slashes included (as in tag rules). A literal registry is folded like the routes fold
 * it, so `index.docker.io/library/*` means docker.io.
 */
export function compilePattern(pattern: string): RegExp {
  const slash = pattern.indexOf('/');
  const first = slash === -1 ? pattern : pattern.slice(0, slash);
  const folded = first.includes('*') ? pattern : canonicalRegistry(first) + pattern.slice(first.length);
  const escaped = folded.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}
