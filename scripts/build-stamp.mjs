// `npm start` builds only when the sources changed (issue 16, point 2): `npm run build` ends with `write`, which
// records a hash of what the build read (src/, the tsconfigs, this directory's build scripts) in
// dist/.build-stamp; `prestart` runs `ensure`, which rebuilds only when that hash differs or dist/ is missing.
// A content hash rather than mtimes: a git checkout or a copy changes mtimes without changing the output.
// Hashing the ~200 source files takes a few ms; a no-op `tsc --incremental` takes 3 s here.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stampPath = join(root, 'dist', '.build-stamp');
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'scripts/copy-assets.mjs', 'scripts/build-stamp.mjs'];

async function files(path) {
  const entries = await readdir(path, { withFileTypes: true }).catch((err) => {
    if (err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  if (entries === undefined) return [path];
  const nested = await Promise.all(entries.map((e) => files(join(path, e.name))));
  return nested.flat();
}

async function sourceHash() {
  const hash = createHash('sha256');
  const all = (await Promise.all(inputs.map((p) => files(join(root, p))))).flat().sort();
  for (const file of all) {
    hash.update(`${relative(root, file)}\0`);
    hash.update(await readFile(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

const command = process.argv[2];
if (command === 'write') {
  await writeFile(stampPath, `${await sourceHash()}\n`);
} else if (command === 'ensure') {
  const stamp = await readFile(stampPath, 'utf8').catch(() => '');
  const fresh = stamp.trim() === (await sourceHash()) && existsSync(join(root, 'dist', 'src', 'main.js'));
  if (!fresh) {
    console.error('sources changed since the last build: building');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const { status } = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: 'inherit' });
    process.exit(status ?? 1);
  }
} else {
  console.error('usage: node scripts/build-stamp.mjs write|ensure');
  process.exit(2);
}
