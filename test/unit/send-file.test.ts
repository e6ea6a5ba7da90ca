// sendFileRange reuses its buffers across responses: bytes must stay right when many responses interleave,
// a range must be exact, and a client that hangs up must end the send instead of leaving it waiting.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, Agent } from 'undici';
import { CHUNK_BYTES, sendFileRange } from '../../src/http/send-file.js';

let dir: string;
let server: Server;
let base: string;
const files = new Map<string, Buffer>();
const outcomes: Array<{ sent?: number; error?: string }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regmirror-send-'));
  for (const [name, size] of [['a', 3 * CHUNK_BYTES + 17], ['b', CHUNK_BYTES - 1], ['c', 5 * CHUNK_BYTES], ['empty', 0]] as const) {
    const bytes = randomBytes(size);
    files.set(name, bytes);
    await writeFile(join(dir, name), bytes);
  }
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const name = url.pathname.slice(1);
    const size = files.get(name)?.length ?? 0;
    const start = Number(url.searchParams.get('start') ?? 0);
    const end = Number(url.searchParams.get('end') ?? size - 1);
    void (async () => {
      const handle = await open(join(dir, name), 'r');
      res.writeHead(200, { 'content-length': end - start + 1 });
      try {
        const sent = await sendFileRange(res, async (buffer, length, position) => (await handle.read(buffer, 0, length, position)).bytesRead, start, end, 30_000);
        outcomes.push({ sent });
        res.end();
      } catch (err) {
        outcomes.push({ error: (err as NodeJS.ErrnoException).code ?? String(err) });
        res.destroy();
      } finally {
        await handle.close();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function get(path: string): Promise<Buffer> {
  const res = await request(`${base}${path}`);
  return Buffer.from(await res.body.arrayBuffer());
}

describe('sendFileRange', () => {
  it('sends the right bytes to 24 interleaved responses sharing the buffer pool', async () => {
    const names = ['a', 'b', 'c', 'empty'];
    const wanted = Array.from({ length: 24 }, (_, i) => names[i % names.length] as string);
    const bodies = await Promise.all(wanted.map((name) => get(`/${name}`)));
    bodies.forEach((body, i) => expect(body.equals(files.get(wanted[i] as string) as Buffer)).toBe(true));
  });

  it('sends exactly the range asked for, across chunk boundaries', async () => {
    const a = files.get('a') as Buffer;
    const start = CHUNK_BYTES - 5;
    const end = 2 * CHUNK_BYTES + 3;
    expect((await get(`/a?start=${start}&end=${end}`)).equals(a.subarray(start, end + 1))).toBe(true);
    expect((await get('/a?start=7&end=7')).equals(a.subarray(7, 8))).toBe(true);
  });

  it('rejects when the client hangs up mid-body', async () => {
    outcomes.length = 0;
    const agent = new Agent();
    const res = await request(`${base}/c`, { dispatcher: agent });
    for await (const _chunk of res.body) break; // one chunk, then hang up
    await agent.destroy();
    await expect.poll(() => outcomes.length).toBe(1);
    // Which of the two comes first depends on whether a write was under way when the reset arrived.
    expect(['CLIENT_GONE', 'ECONNRESET', 'EPIPE']).toContain(outcomes[0]?.error);
  });
});
