// `regmirror fsck`: checks a stopped mirror's store against its index; rebuilds the index from the files.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskBlobStore } from '../cache/blob-store.js';
import { checkStore, rebuildIndex, type FsckHooks, type FsckReport } from '../cache/fsck.js';
import { loadConfig } from '../config/load.js';
import { BlobIndex } from '../index/blob-index.js';
import { openIndex } from '../index/db.js';
import { parseFlags } from './args.js';
import type { CommandContext } from './command.js';
import { inUseError, isLockError, openIndexOf } from './data-dir.js';
import { humanBytes, progressBar } from './progress.js';

export const FSCK_HELP = `usage: regmirror fsck [--config FILE] [--verify-digests] [--repair] [--rebuild-index]

Checks the data directory of a stopped mirror (from the config, or REGMIRROR_DATA): every index record must
name a file of the recorded size. Temp files of interrupted downloads are removed. Unlike ls, pin, gc, seed,
export and import, fsck does not go through a running mirror's admin socket: its downloads in progress would
look like damage, so fsck refuses a directory whose mirror runs.
  --verify-digests  also hash every file and compare it with its name (reads everything; shows progress)
  --repair          remove records of missing or damaged files, and those files; index files that have none
  --rebuild-index   throw the index away and make a new one from the files on disk (after losing or
                    damaging index/); tags are asked upstream again, their content is found on disk
A file that cannot be read (EIO, EACCES) is reported as unreadable and never removed, nor indexed anew: only
a proven size or digest mismatch removes a file.
Exit status: 0 when nothing is wrong, 1 when problems were found (also when --repair fixed them).
`;

const OPTIONS = {
  'verify-digests': { type: 'boolean' },
  repair: { type: 'boolean' },
  'rebuild-index': { type: 'boolean' },
} as const;

export async function fsck(ctx: CommandContext): Promise<void> {
  const { values, configFile } = parseFlags(ctx, { command: 'fsck', help: FSCK_HELP, options: OPTIONS });
  const { 'verify-digests': verifyDigests = false, repair = false, 'rebuild-index': rebuild = false } = values;
  const config = await loadConfig({ file: configFile, env: ctx.env });
  const store = new DiskBlobStore(config.dataDir);
  const hooks = progressHooks(verifyDigests || rebuild);
  let report: FsckReport;
  if (rebuild) {
    // A lost or corrupt index may not even open; a locked one means the mirror runs.
    await openIndex(config.dataDir).then(
      (db) => db.close(),
      (err: unknown) => {
        if (isLockError(err)) throw inUseError(config);
      },
    );
    await rm(join(config.dataDir, 'index'), { recursive: true, force: true });
    const db = await openIndexOf(config);
    try {
      report = await rebuildIndex(config.dataDir, new BlobIndex(db, 1000), store, { verifyDigests }, hooks);
    } finally {
      await db.close();
    }
  } else {
    const db = await openIndexOf(config);
    try {
      report = await checkStore(config.dataDir, new BlobIndex(db, 1000), store, { verifyDigests, repair }, hooks);
    } finally {
      await db.close();
    }
  }
  ctx.out(summary(report, config.dataDir, rebuild));
  if (report.problems.length > 0) process.exitCode = 1;
}

function progressHooks(show: boolean): FsckHooks {
  if (!show) return {};
  let bar: ReturnType<typeof progressBar> | undefined;
  return {
    onHashStart: (total) => (bar = progressBar('fsck', total, humanBytes)),
    onHashed: (bytes) => {
      bar?.advance(bytes);
    },
  };
}

function summary(r: FsckReport, dataDir: string, rebuilt: boolean): string {
  const lines = r.problems.map((p) => `${p.problem}: ${p.digest ?? p.path ?? ''} (${p.detail})`);
  lines.push(
    `${dataDir}: ${r.files} file(s), ${humanBytes(r.bytes)}; ${r.records} index record(s)` +
      (rebuilt ? ' (rebuilt)' : '') +
      (r.unindexed > 0 ? `; ${r.unindexed} file(s) without a record (adopted by the next download or --repair)` : '') +
      (r.tempFilesRemoved > 0 ? `; ${r.tempFilesRemoved} temp file(s) removed` : '') +
      (r.repaired > 0 && !rebuilt ? `; ${r.repaired} repaired` : ''),
    r.problems.length === 0 ? 'no problems found' : `${r.problems.length} problem(s) found`,
  );
  return `${lines.join('\n')}\n`;
}
