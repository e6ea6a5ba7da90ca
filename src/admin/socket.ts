// The admin socket: `<dataDir>/admin.sock`, HTTP/1.1 through the same server code as the registry port, mode
// 0600 from the moment it exists. Its file mode is the access control (only the mirror's user, or root), so
// it takes no token. The CLI commands find it there while the mirror runs (cli/admin-client.ts).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RegistryServer, type Handler } from '../http/server.js';
import type { ConnectionLimits } from '../http/limits.js';
import { listenPrivate, MAX_SOCKET_PATH } from '../http/unix-socket.js';
import type { Metrics } from '../metrics/metrics.js';

export const SOCKET_NAME = 'admin.sock';
export { MAX_SOCKET_PATH };

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, SOCKET_NAME);
}

export interface AdminSocket {
  readonly path: string;
  close(timeoutMs: number): Promise<void>;
}

/**
 * Listens on the data directory's socket, or logs why not and returns undefined (a data directory whose path
 * is too long for a socket still runs a mirror). A socket file left by a mirror that was killed is removed
 * first: the index's lock, taken before this, proves no other mirror owns the directory.
 */
export async function startAdminSocket(o: { dataDir: string; handler: Handler; log: Logger; metrics: Metrics; limits: ConnectionLimits }): Promise<AdminSocket | undefined> {
  const path = adminSocketPath(o.dataDir);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    o.log.warn({ path, bytes: Buffer.byteLength(path), limit: MAX_SOCKET_PATH }, 'admin socket not created: its path is too long for a Unix socket (use a shorter dataDir, or admin.token)');
    return undefined;
  }
  // Bundles may take long to upload: no whole-request timeout here (the socket is the operator's own).
  const server = new RegistryServer({ handler: o.handler, log: o.log, metrics: o.metrics, limits: o.limits, requestTimeout: 0 });
  try {
    await listenPrivate(server, path);
  } catch (err) {
    // Some filesystems (NFS, CIFS, 9p) refuse Unix sockets: the mirror serves on, the CLI needs it stopped.
    o.log.warn({ err, path }, 'admin socket not created: the data directory does not take a Unix socket (use admin.token, or stop the mirror for the CLI)');
    await server.close(0).catch(() => undefined);
    return undefined;
  }
  o.log.info({ path }, 'admin socket listening');
  return {
    path,
    async close(timeoutMs) {
      await server.close(timeoutMs);
      await rm(path, { force: true });
    },
  };
}
