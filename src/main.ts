#!/usr/bin/env node
// The regmirror command: picks a subcommand and reports its failure as one line. No logic here.
import { ConfigError } from './config/load.js';
import { CERT_HELP, cert } from './cli/cert.js';
import { CLIENT_CONFIG_HELP, clientConfigCommand } from './cli/client-config.js';
import { UsageError, type CommandContext } from './cli/command.js';
import { EXPORT_HELP, IMPORT_HELP, exportCommand, importCommand } from './cli/bundle.js';
import { FSCK_HELP, fsck } from './cli/fsck.js';
import { SEED_HELP, seed } from './cli/seed.js';
import { GC_HELP, gc } from './cli/gc.js';
import { HEALTHCHECK_HELP, healthcheck } from './cli/healthcheck.js';
import { LS_HELP, ls } from './cli/ls.js';
import { PIN_HELP, pin, unpin } from './cli/pin.js';
import { SERVE_HELP, serve } from './cli/serve.js';

const COMMANDS = {
  serve: { run: serve, help: SERVE_HELP, summary: 'run the mirror (the default)' },
  ls: { run: ls, help: LS_HELP, summary: 'list cached repositories and tags' },
  seed: { run: seed, help: SEED_HELP, summary: 'pull images into the cache and pin them' },
  export: { run: exportCommand, help: EXPORT_HELP, summary: 'write cached images as an OCI layout tar' },
  import: { run: importCommand, help: IMPORT_HELP, summary: 'load an OCI layout tar or directory, verified' },
  gc: { run: gc, help: GC_HELP, summary: 'remove content no tag or pin reaches' },
  pin: { run: pin, help: PIN_HELP, summary: 'keep an image whatever the quota; list pins' },
  unpin: { run: unpin, help: PIN_HELP, summary: 'stop keeping an image' },
  fsck: { run: fsck, help: FSCK_HELP, summary: 'check the store; rebuild a lost index (mirror stopped)' },
  cert: { run: cert, help: CERT_HELP, summary: 'make a self-signed TLS certificate' },
  'client-config': { run: clientConfigCommand, help: CLIENT_CONFIG_HELP, summary: 'print or write client files pointing every registry at the mirror' },
  healthcheck: { run: healthcheck, help: HEALTHCHECK_HELP, summary: "exit 0 if the configured listener's /healthz answers" },
} as const;

const HELP = `usage: regmirror [COMMAND] [--config FILE] [OPTIONS]

A pull-through caching mirror for Docker Hub.

commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(15)}${command.summary}`)
  .join('\n')}

Run 'regmirror COMMAND --help' for a command's options.
`;

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(HELP);
    return;
  }
  const name = first === undefined || first.startsWith('-') ? 'serve' : first;
  const command = COMMANDS[name as keyof typeof COMMANDS];
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`, HELP);
  const rest = name === first ? argv.slice(1) : argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help);
    return;
  }
  // Each command parses its own flags, --config among them (src/cli/args.ts); REGMIRROR_CONFIG is the default.
  const ctx: CommandContext = { args: rest, configFile: process.env.REGMIRROR_CONFIG, env: process.env, out: (text) => process.stdout.write(text) };
  await command.run(ctx);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // A bad config, a bad flag or an unusable data directory is a one-line message, not a stack trace.
  if (err instanceof UsageError) {
    process.stderr.write(`regmirror: ${err.message}\n${err.help}`);
    process.exit(2);
  }
  const message = err instanceof ConfigError ? err.message : `regmirror: ${(err as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
