// Measurement-only prototype for issue 16.3 ("does serving on every core pay?"), not a supported mode: a
// node:cluster primary forks N `regmirror serve` workers on one port (the primary accepts and hands connections
// round robin). Each worker is a whole mirror with its own data directory (<dir>/w<i>) and index, so this is the
// ceiling any real design can reach (one index owner answering workers over IPC only adds to it); it is not
// correct as a mirror (N upstream fetches per blob, N indexes, N metric registries).
// usage: node cluster-prototype.mjs <workers> <dist main.js> serve --listen H:P --data-dir DIR [serve flags…]
import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout } from 'node:timers';

const [count, main, ...args] = process.argv.slice(2);
const at = args.indexOf('--data-dir');
const dir = args[at + 1];
for (let i = 0; i < Number(count); i++) {
  const workerArgs = [...args];
  workerArgs[at + 1] = join(dir, `w${i}`);
  mkdirSync(workerArgs[at + 1], { recursive: true });
  cluster.setupPrimary({ exec: main, args: workerArgs, silent: false });
  cluster.fork();
}
const stop = () => {
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  setTimeout(() => process.exit(0), 3000).unref();
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
