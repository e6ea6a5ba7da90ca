// `regmirror client-config`: the files that point a client at this mirror for every configured registry,
// printed or written into a directory (the formats are in client-files.ts).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { registriesOf } from '../config/registries.js';
import { parseFlags } from './args.js';
import { clientConfig, CLIENTS, formatClientConfig, parseMirrorUrl, type Client } from './client-files.js';
import { UsageError, type CommandContext } from './command.js';

export const CLIENT_CONFIG_HELP = `usage: regmirror client-config containerd|podman|k3s|docker --mirror URL [--output DIR] [--config FILE]

Prints the client files that send pulls of every registry in the config (upstreams, else Docker Hub) to the
mirror at URL (http://mirror.example.internal:5000), each after a "# <path>" line; with --output, writes them
under DIR and prints their paths.
  containerd  <registry>/hosts.toml for each registry (DIR: /etc/containerd/certs.d, the CRI config_path)
  podman      registries.conf, a mirror per registry by path prefix (also CRI-O, skopeo, buildah)
  k3s         registries.yaml (DIR: /etc/rancher/k3s)
  docker      daemon.json: registry-mirrors serves Docker Hub only; other registries by name through the mirror
`;

const OPTIONS = {
  mirror: { type: 'string' },
  output: { type: 'string', short: 'o' },
} as const;

export async function clientConfigCommand(ctx: CommandContext): Promise<void> {
  const { values, positionals, configFile } = parseFlags(ctx, { command: 'client-config', help: CLIENT_CONFIG_HELP, options: OPTIONS, positionals: true });
  const [client, ...extra] = positionals;
  const usage = (message: string) => new UsageError(`client-config: ${message}`, CLIENT_CONFIG_HELP);
  if (client === undefined) throw usage(`which client? one of ${CLIENTS.join(', ')}`);
  if (!isClient(client)) throw usage(`unknown client ${JSON.stringify(client)}, expected one of ${CLIENTS.join(', ')}`);
  if (extra.length > 0) throw usage(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (values.mirror === undefined) throw usage('--mirror URL is required (http://host:port as clients reach the mirror)');
  const mirror = parseMirrorUrl(values.mirror);
  if (!mirror) throw usage(`--mirror must be an http(s) URL without path, such as http://mirror.example.internal:5000, found ${JSON.stringify(values.mirror)}`);

  const config = await loadConfig({ file: configFile, env: ctx.env });
  const made = clientConfig(client, mirror, registriesOf(config).list);
  if (values.output === undefined) {
    ctx.out(formatClientConfig(made));
    return;
  }
  for (const file of made.files) {
    const path = join(values.output, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.text);
    ctx.out(`${path}\n`);
  }
  ctx.out(made.notes.map((note) => `# ${note}\n`).join(''));
}

function isClient(name: string): name is Client {
  return (CLIENTS as readonly string[]).includes(name);
}
