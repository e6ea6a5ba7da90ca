// Issue 14, findings 1, 9 and 10: client-chosen values never become unbounded metric labels, every response says
// nosniff, and the operational endpoints answer GET and HEAD only. An in-process mirror on loopback, offline.
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';

let mirror: TestMirror;
let session: ClientHttp2Session | undefined;

beforeAll(async () => {
  mirror = await startMirror('none');
});
afterAll(async () => {
  session?.destroy();
  await mirror?.close();
});

function h2request(s: ClientHttp2Session, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const stream = s.request(headers);
    stream.on('response', (h) => resolve({ status: Number(h[':status']), headers: h }));
    stream.on('error', reject);
    stream.resume();
  });
}

describe('metric labels under hostile methods', () => {
  it('keeps /metrics small after 3,000 h2c requests with distinct 512-byte methods', async () => {
    session = connect(mirror.url);
    session.on('error', () => undefined);
    const baseline = (await mirror.metrics()).length;
    const heapBefore = process.memoryUsage();
    const total = 3_000;
    // In batches of 100 (the default stream limit), every one a distinct method name.
    for (let batch = 0; batch < total / 100; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => h2request(session as ClientHttp2Session, { ':method': `X${'M'.repeat(500)}${batch * 100 + i}`, ':path': '/v2/' })),
      );
      for (const answer of answers) expect(answer.status).toBe(405);
    }
    const started = Date.now();
    const text = await mirror.metrics();
    const renderMs = Date.now() - started;
    const heapAfter = process.memoryUsage();
    const series = text.split('\n').filter((line) => line.startsWith('regmirror_http_request_duration_seconds_count'));
    console.log(
      `3,000 distinct methods: /metrics ${baseline} → ${text.length} bytes (rendered in ${renderMs} ms), ` +
        `${series.length} duration series, heap ${(heapBefore.heapUsed / 2 ** 20).toFixed(0)} → ${(heapAfter.heapUsed / 2 ** 20).toFixed(0)} MiB, ` +
        `rss ${(heapBefore.rss / 2 ** 20).toFixed(0)} → ${(heapAfter.rss / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(text.length).toBeLessThan(baseline + 20_000);
    expect(series.length).toBeLessThanOrEqual(3);
    expect(text).toContain('regmirror_http_request_duration_seconds_count{method="other",status="405"} 3000');
  });
});

describe('response hardening', () => {
  it('sends X-Content-Type-Options: nosniff on answers and on errors', async () => {
    for (const path of ['/v2/', '/healthz', '/metrics', '/v2/library/alpine/manifests/nope', '/nowhere']) {
      const response = await fetch(`${mirror.url}${path}`);
      await response.arrayBuffer();
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });

  it('answers /metrics, /healthz and /readyz to GET and HEAD only', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      for (const method of ['GET', 'HEAD']) expect((await fetch(`${mirror.url}${path}`, { method })).status, `${method} ${path}`).not.toBe(405);
      for (const method of ['POST', 'DELETE', 'PUT']) {
        const response = await fetch(`${mirror.url}${path}`, { method });
        await response.arrayBuffer();
        expect(response.status, `${method} ${path}`).toBe(405);
        expect(response.headers.get('allow')).toBe('GET, HEAD');
      }
    }
  });
});
