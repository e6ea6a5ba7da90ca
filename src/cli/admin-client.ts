// Where the admin commands (ls, pin, unpin, gc, seed, export, import) run: through the running mirror's admin
// socket when one answers, else on the data directory itself (the same AdminOperations, app.ts openAdmin).
// Both sides implement AdminApi, so each command has one code path and one formatter, whichever it gets.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pino } from 'pino';
import { create as createTar } from 'tar';
import { Agent, request } from 'undici';
import type { AdminApi, DeleteResult, ExportPlan, ExportRequest, ImagesResult, PinChange, PinRow, RevalidateResult, SeedSummary } from '../admin/operations.js';
import { adminSocketPath } from '../admin/socket.js';
import { openAdmin } from '../app.js';
import type { GcReport } from '../cache/retention.js';
import type { Config } from '../config/schema.js';
import type { ImportSummary } from '../seed/import.js';
import type { ImageSeedResult, Platform, SeedProgress } from '../seed/seed.js';
import { isLockError } from './data-dir.js';

/** An error the mirror answered with: its registry code and message (printed as the message alone). */
export class AdminRemoteError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminRemoteError';
  }
}

/** Runs `work` against the running mirror's admin socket, or against the data directory when none answers. */
export async function withAdmin<T>(config: Config, work: (api: AdminApi, via: 'socket' | 'direct') => Promise<T>): Promise<T> {
  const socketPath = adminSocketPath(config.dataDir);
  if (await socketAnswers(socketPath)) {
    const api = new SocketAdmin(socketPath);
    try {
      return await work(api, 'socket');
    } finally {
      await api.close();
    }
  }
  const opened = await openAdmin(config, pino({ level: 'silent' })).catch((err: unknown) => {
    // The lock is held, yet no socket answered: the mirror runs with admin.socket false (or its path is too long).
    if (isLockError(err)) {
      throw new Error(`the index in ${config.dataDir} is in use by a running regmirror without an admin socket: set admin.socket: true in its config (and a dataDir path under 100 bytes), or stop it`);
    }
    throw err;
  });
  try {
    return await work(opened.admin, 'direct');
  } finally {
    await opened.close();
  }
}

/** true: a mirror listens there. No file, or a file nobody listens on (a mirror killed): false. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(false);
      else if (err.code === 'EACCES') reject(new Error(`cannot use the admin socket ${path}: permission denied (run as the user that runs the mirror)`));
      else reject(new Error(`cannot use the admin socket ${path}: ${err.code ?? err.message}`));
    });
  });
}

/** The admin API over the socket: requests to `http://localhost/api/v1/admin/…`. */
class SocketAdmin implements AdminApi {
  // Exports and imports take as long as they take; the export's summary header may list many images.
  private readonly agent: Agent;

  constructor(socketPath: string) {
    this.agent = new Agent({ connect: { socketPath }, headersTimeout: 0, bodyTimeout: 0, maxHeaderSize: 16 << 20 });
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  images(): Promise<ImagesResult> {
    return this.json('GET', 'images');
  }

  async pins(): Promise<PinRow[]> {
    return (await this.json<{ pins: PinRow[] }>('GET', 'pins')).pins;
  }

  async pin(refs: string[]): Promise<PinChange[]> {
    return (await this.json<{ changes: PinChange[] }>('POST', 'pins', { refs })).changes;
  }

  async unpin(refs: string[]): Promise<PinChange[]> {
    return (await this.json<{ changes: PinChange[] }>('DELETE', 'pins', { refs })).changes;
  }

  delete(ref: string, what: 'tag' | 'image'): Promise<DeleteResult> {
    return this.json('POST', 'delete', { ref, what });
  }

  revalidate(ref: string): Promise<RevalidateResult> {
    return this.json('POST', 'revalidate', { ref });
  }

  gc(dryRun: boolean): Promise<GcReport> {
    return this.json('POST', 'gc', { dryRun });
  }

  async seed(refs: string[], platforms: Platform[] | 'all', progress: SeedProgress, onImage: (result: ImageSeedResult) => void = () => undefined): Promise<SeedSummary> {
    const names = platforms === 'all' ? 'all' : platforms.map((p) => [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('/')).join(',');
    const response = await this.send('POST', 'seed', JSON.stringify({ refs, platforms: names }));
    return events<SeedSummary>(response.body, (event) => {
      if (event.event === 'start') progress.start(String(event.image), Number(event.total));
      else if (event.event === 'advance') progress.advance(Number(event.bytes));
      else if (event.event === 'end') progress.end();
      else if (event.event === 'image') onImage(event.result as ImageSeedResult);
    });
  }

  async exportBundle(req: ExportRequest, open: (plan: ExportPlan) => Writable, onBytes: (n: number) => void = () => undefined): Promise<ExportPlan> {
    const body = { refs: req.refs ?? [], pinned: req.which === 'pinned', all: req.which === 'all', have: req.have ?? [] };
    const response = await this.send('POST', 'export', JSON.stringify(body));
    const plan = JSON.parse(String(response.headers['x-regmirror-export'])) as ExportPlan;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        onBytes(chunk.length);
        done(null, chunk);
      },
    });
    await pipeline(response.body, counter, open(plan), { end: false });
    return plan;
  }

  /** A tar is sent as it is; a layout directory is packed into one on the way. */
  async importBundle(source: string, onBytes: (n: number) => void = () => undefined): Promise<ImportSummary> {
    const body: Readable = (await stat(source)).isDirectory() ? (createTar({ cwd: source, portable: true }, ['.']) as unknown as Readable) : createReadStream(source);
    const response = await this.send('POST', 'import', body, 'application/x-tar');
    return events<ImportSummary>(response.body, (event) => {
      if (event.event === 'advance') onBytes(Number(event.bytes));
    });
  }

  private async json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const response = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body));
    return (await response.body.json()) as T;
  }

  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, body: string | Readable | undefined, type = 'application/json') {
    const response = await request(`http://localhost/api/v1/admin/${path}`, {
      method,
      dispatcher: this.agent,
      ...(body === undefined ? {} : { body, headers: { 'content-type': type } }),
    });
    if (response.statusCode !== 200) {
      const text = await response.body.text();
      throw remoteError(text, response.statusCode);
    }
    return response;
  }
}

function remoteError(text: string, status: number): AdminRemoteError {
  try {
    const error = (JSON.parse(text) as { errors?: Array<{ code: string; message: string }> }).errors?.[0];
    if (error) return new AdminRemoteError(error.code, error.message);
  } catch {
    // not the mirror's JSON: said as it came
  }
  return new AdminRemoteError('UNKNOWN', `the mirror answered ${status}: ${text.slice(0, 200)}`);
}

/** Reads an NDJSON answer: every event to `onEvent`, then the `done` event's result, or the `error` thrown. */
async function events<T>(body: AsyncIterable<Buffer>, onEvent: (event: Record<string, unknown>) => void): Promise<T> {
  let rest = '';
  for await (const chunk of body) {
    rest += chunk.toString('utf8');
    let newline;
    while ((newline = rest.indexOf('\n')) !== -1) {
      const event = JSON.parse(rest.slice(0, newline)) as Record<string, unknown>;
      rest = rest.slice(newline + 1);
      if (event.event === 'done') return event.result as T;
      if (event.event === 'error') {
        const error = event.error as { code: string; message: string };
        throw new AdminRemoteError(error.code, error.message);
      }
      onEvent(event);
    }
  }
  throw new Error('the mirror ended its answer without a result (did it stop?)');
}
