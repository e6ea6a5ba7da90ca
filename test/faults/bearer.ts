// Owns: the registry token protocol in its smallest form (distribution docs/spec/auth/token.md) for fault servers:
// a 401 Bearer challenge naming a realm on the same server, GET /token issuing t1, t2, …, and expiry on demand.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface IssuedToken {
  token: string;
  scope: string | null;
  service: string | null;
  /** The Authorization header the token request carried (Basic credentials, or none). */
  authorization: string | undefined;
}

export const SERVICE = 'faults.test';

export class BearerRealm {
  readonly issued: IssuedToken[] = [];
  private readonly valid = new Set<string>();

  /** expiresIn: the `expires_in` each token is issued with, in seconds. */
  constructor(private readonly expiresIn = 300) {}

  /** Answers GET /token; false for any other path. */
  token(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://fault');
    if (url.pathname !== '/token') return false;
    const token = `t${this.issued.length + 1}`;
    this.issued.push({ token, scope: url.searchParams.get('scope'), service: url.searchParams.get('service'), authorization: req.headers.authorization });
    this.valid.add(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: this.expiresIn }));
    return true;
  }

  /** Answers 401 with a challenge unless the request carries a token still valid; false when it may pass. */
  challenge(req: IncomingMessage, res: ServerResponse): boolean {
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token !== undefined && this.valid.has(token)) return false;
    const repo = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(req.url ?? '')?.[1] ?? '';
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="${SERVICE}",scope="repository:${repo}:pull"`,
    });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    return true;
  }

  /** Every token issued so far stops working: the next request with one gets a 401. */
  expireAll(): void {
    this.valid.clear();
  }
}
