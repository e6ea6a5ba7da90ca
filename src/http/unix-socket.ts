// A server on a Unix socket only the mirror's user may open (mode 0600 from the moment the file exists): the admin
// socket, and the primary's internal socket behind http.workers. The file mode is the access control.
import { chmod, rm } from 'node:fs/promises';
import type { RegistryServer } from './server.js';

/** sun_path holds 108 bytes on Linux, the terminating NUL included (104 on macOS and the BSDs). */
export const MAX_SOCKET_PATH = 107;

/**
 * Listens on `path`, replacing a file left by a process that was killed (the caller holds the data directory's
 * index lock, which proves no other mirror owns it). Rejects when the filesystem takes no socket.
 */
export async function listenPrivate(server: RegistryServer, path: string): Promise<void> {
  await rm(path, { force: true });
  // bind() creates the file with the process umask: 0177 for that one synchronous call makes it 0600 from the
  // start, so no client can connect in a window before the chmod below (which only confirms it).
  const umask = process.umask(0o177);
  let listening: Promise<void>;
  try {
    listening = server.listenPath(path);
  } finally {
    process.umask(umask);
  }
  await listening;
  await chmod(path, 0o600);
}
