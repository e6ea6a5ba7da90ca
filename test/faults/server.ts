// Owns: a tiny node:http upstream on loopback whose every answer the test scripts (a status, a stall, a redirect),
// recording each request that arrived. One per test, closed in afterEach; no registry process behind it.
import { createServer, type IncomingMessage, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
}

export type FaultHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface FaultServer {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: SeenRequest[];
  /** Drops open connections (a stalled answer included), then stops listening. */
  close(): Promise<void>;
}

export async function startFaultServer(handler: FaultHandler): Promise<FaultServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    Promise.resolve(handler(req, res)).catch((err: unknown) => res.destroy(err as Error));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A registry error body (distribution's `{"errors":[…]}`) with the given status and headers. */
export function registryError(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ errors: [{ code, message: `fault: ${code}` }] }));
}
