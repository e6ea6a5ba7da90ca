// `npm start` builds only when the sources changed (issue 16, point 2): `npm run build` ends with `write`, which
// records a hash of what the build read (src/, the tsconfigs, this directory's build scripts) in
// dist/.build-stamp; `prestart` runs `ensure`, which rebuilds only when that hash differs or dist/ is missing.
// A content hash rather than mtimes: a git checkout or a copy changes mtimes without changing the output.
// Hashing the ~200 source files takes a few ms; a no-op `tsc --incremental` takes 3 s here.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stampPath = join(root, 'dist', '.build-stamp');
const nextPath = `${stampPath}.next`;
// package.json's "type" changes what tsc emits; the lock file, which compiler runs.
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json', 'scripts/copy-assets.mjs', 'scripts/build-stamp.mjs'];
/** A build is whole only with its entry point and the status page's files. */
const outputs = [join(root, 'dist', 'src', 'main.js'), join(root, 'dist', 'src', 'status', 'assets', 'index.html')];

async function files(path) {
  const entries = await readdir(path, { withFileTypes: true }).catch((err) => {
    if (err.code === 'ENOTDIR') return undefined;
    // A dangling symlink (an editor's lock file) or a file deleted meanwhile: not an input.
    if (err.code === 'ENOENT') return [];
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
    const bytes = await readFile(file).catch((err) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (bytes === undefined) continue;
    hash.update(`${relative(root, file)}\0`);
    hash.update(bytes);
    hash.update('\0');
  }
  return hash.digest('hex');
}

const command = process.argv[2];
if (command === 'begin') {
  // Hashed before tsc reads the sources (an edit during the build is not stamped as built), and the old stamp
  // goes first (a build that fails half-way leaves none, so the next start builds again).
  await rm(stampPath, { force: true });
  await mkdir(join(root, 'dist'), { recursive: true });
  await writeFile(nextPath, `${await sourceHash()}\n`);
} else if (command === 'write') {
  await rename(nextPath, stampPath).catch(async (err) => {
    if (err.code !== 'ENOENT') throw err;
    await writeFile(stampPath, `${await sourceHash()}\n`); // built without `begin` (an older script)
  });
} else if (command === 'ensure') {
  const stamp = await readFile(stampPath, 'utf8').catch(() => '');
  const fresh = stamp.trim() === (await sourceHash()) && outputs.every((file) => existsSync(file));
  if (!fresh) {
    console.error('sources changed since the last build: building');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const { status } = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: 'inherit' });
    process.exit(status ?? 1);
  }
} else {
  console.error('usage: node scripts/build-stamp.mjs begin|write|ensure');
  process.exit(2);
}
