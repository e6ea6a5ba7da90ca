// Issue 16, point 3: the server's log never stalls serving. A reader that stops reading costs log lines beyond a
// bounded buffer, counted; the process goes on (pino's synchronous default slept 100 ms per EAGAIN instead).
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { stdoutDestination } from '../../src/cli/log-destination.js';

const fds: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) closeSync(fd);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A FIFO opened for both ends, non-blocking: a pipe whose reader reads only when the test says so. */
function stalledPipe(): { writeFd: number; readFd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'log-destination-'));
  dirs.push(dir);
  const path = join(dir, 'stdout');
  execFileSync('mkfifo', [path]);
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  fds.push(readFd, writeFd);
  return { writeFd, readFd };
}

describe('stdoutDestination', () => {
  it('drops and counts lines beyond its buffer when stdout is not read, instead of blocking the caller', async () => {
    const { writeFd, readFd } = stalledPipe();
    const destination = stdoutDestination(writeFd, 256 * 1024);
    const log = pino({ base: null }, destination.stream);
    // ~1.6 MB of lines into a 64 KiB pipe nobody reads: a synchronous destination would not return.
    for (let i = 0; i < 20_000; i++) log.info({ i, path: '/v2/library/x/manifests/latest' }, 'request');
    expect(destination.dropped).toBeGreaterThan(0);
    // What did go out is whole JSON lines, in order.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const buffer = Buffer.alloc(64 * 1024);
    const n = readSync(readFd, buffer);
    const lines = buffer.subarray(0, n).toString('utf8').split('\n');
    expect((JSON.parse(lines[0] ?? '') as { i: number }).i).toBe(0);
    expect((JSON.parse(lines[1] ?? '') as { msg: string }).msg).toBe('request');
    destination.stream.destroy();
  });
});
