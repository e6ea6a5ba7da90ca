// `regmirror cert`: a self-signed certificate and key for a quick HTTPS start, made with openssl.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseFlags } from './args.js';
import { UsageError, type CommandContext } from './command.js';

export const CERT_HELP = `usage: regmirror cert [--out DIR] [--name HOST_OR_IP]... [--days N]

Writes DIR/cert.pem and DIR/key.pem (default DIR: ./tls), self-signed for every --name (default: localhost
and 127.0.0.1). Point tls.cert and tls.key at them, and give clients cert.pem as the CA
(docker: /etc/docker/certs.d/HOST:PORT/ca.crt). Needs openssl.
`;

const OPTIONS = {
  out: { type: 'string' },
  name: { type: 'string', multiple: true },
  days: { type: 'string' },
} as const;

export async function cert(ctx: CommandContext): Promise<void> {
  const { out, names, days } = certArgs(ctx);
  await mkdir(out, { recursive: true });
  const san = names.map((name) => (isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  const [certPath, keyPath] = [join(out, 'cert.pem'), join(out, 'key.pem')];
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', String(days),
      '-subj', `/CN=${names[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`,
      '-keyout', keyPath, '-out', certPath,
    ]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'openssl is not installed' : `openssl failed: ${(err as Error).message.split('\n')[0]}`);
  }
  ctx.out(`wrote ${certPath} and ${keyPath} for ${names.join(', ')}, valid ${days} days\n`);
  ctx.out(`config:\n  tls:\n    cert: "${certPath}"\n    key: "${keyPath}"\n`);
}

function certArgs(ctx: CommandContext): { out: string; names: string[]; days: number } {
  const { values } = parseFlags(ctx, { command: 'cert', help: CERT_HELP, options: OPTIONS });
  const names = values.name ?? ['localhost', '127.0.0.1'];
  for (const name of names) {
    if (!/^[A-Za-z0-9.:*-]+$/.test(name)) throw new UsageError(`cert: bad --name ${JSON.stringify(name)}`, CERT_HELP);
  }
  const days = Number(values.days ?? 825);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError('cert: --days must be 1 to 3650', CERT_HELP);
  return { out: values.out ?? 'tls', names, days };
}
