// `regmirror healthcheck`: GET /healthz of the listener serve's config names; the container image's HEALTHCHECK.
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { CommandContext } from './command.js';
import { serveConfig } from './serve.js';

export const HEALTHCHECK_HELP = `usage: regmirror healthcheck [--config FILE] [serve's flags]

Asks the mirror that serve would start, with the same config file (--config or REGMIRROR_CONFIG), environment
(REGMIRROR_LISTEN...) and flags, for /healthz: exit status 0 on 200, else 1 with the reason in one line.
A wildcard listen address is probed on loopback; with tls, over HTTPS, accepting a self-signed certificate.
`;

/** Below Docker's HEALTHCHECK --timeout (3s in our image), so that our one-line reason is what it records. */
const TIMEOUT_MS = 2000;

export async function healthcheck(ctx: CommandContext): Promise<void> {
  const config = await serveConfig(ctx, 'healthcheck', HEALTHCHECK_HELP);
  const host = { '0.0.0.0': '127.0.0.1', '::': '::1', '': '127.0.0.1' }[config.listen.host] ?? config.listen.host;
  const url = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}/healthz`;
  const status = await probe(url).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`healthcheck: ${url}: ${err.name === 'AbortError' ? `no answer within ${TIMEOUT_MS} ms` : (err.code ?? err.message)}`);
  });
  if (status !== 200) throw new Error(`healthcheck: ${url} answered ${status}`);
  ctx.out(`${url}: ok\n`);
}

function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    // agent: false, so no kept-alive socket outlives the check.
    const options = { agent: false, signal: AbortSignal.timeout(TIMEOUT_MS) } as const;
    // The certificate is the mirror's own, often self-signed (regmirror cert): liveness is the question, not trust.
    const req = url.startsWith('https:') ? httpsGet(url, { ...options, rejectUnauthorized: false }, onResponse) : httpGet(url, options, onResponse);
    req.on('error', reject);
  });
}
