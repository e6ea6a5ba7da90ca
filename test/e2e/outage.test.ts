// Owns: the outage matrix of issue 11. Each real client (dockerd and containerd resolve a tag with HEAD, then GET
// by digest; podman and skopeo GET by tag) pulls through its own regmirror once while Docker Hub is healthy; then,
// for each way Hub fails (refused connections, 500, 503, 429 pull limit, stalling past headersTimeout, a failing
// token endpoint), the mirror's clock moves past the tag TTL and a FRESH client must still pull the same digests,
// quickly, while a tag the mirror never held fails fast with 503 (429 under the pull limit); once Hub is back,
// that tag must come through. The table printed at the end is the issue's closing note.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent, request } from 'undici';
import { startHubFront, type Fault, type HubFront } from '../fixtures/hub-front.js';
import { startMirror, type TestMirror } from '../fixtures/mirror.js';
import { pushE2eImages, type E2eImages } from './images.js';
import { CLIENTS, type ImageRef, type PullClient, type StartClient } from './pull-clients.js';

/** A cached image must come within this, whatever upstream does (the breaker spares repeated timeouts). */
const CACHED_PULL_LIMIT_S = 20;
/** regmirror's answer for a tag it never held, under a fault. */
const UNCACHED_ANSWER_LIMIT_S = 5;
/**
 * Between states the mirror's clock moves past the tag TTL (1 h), its Hub token (300 s), the breaker cool-down
 * (30 s), the 429's Retry-After and the rate-limit window the 429 reports (6 h). What carries over is the breaker's
 * count: the states are one long outage that changes form, so each one starts half-open, with one trial request.
 */
const STEP_MS = 7 * 3600_000;

const MIRROR_CONFIG = {
  upstream: { headersTimeout: '1s', connectTimeout: '1s', breakerFailures: 2 },
  // No rules: `latest` and every other tag share one TTL.
  tags: { ttl: '1h', rules: [] },
};

/** Docker Hub's content paths: manifests and blobs of any repository. */
const CONTENT = /^\/v2\/.+\/(?:manifests|blobs)\//;
const MANIFESTS = /^\/v2\/.+\/manifests\//;

interface OutageState {
  name: string;
  begin(front: HubFront): Promise<void>;
  /** What regmirror must answer for a tag it never held: 503, 429 under the pull limit, 200 once Hub is back. */
  uncachedStatus: 200 | 429 | 503;
}

const fault =
  (f: Fault) =>
  (front: HubFront): Promise<void> => {
    front.setFault(f);
    return Promise.resolve();
  };

/**
 * The 429 comes last among the faults so that, should it leave regmirror unable to reach Hub at all, the other
 * states have still tested their own fault; the recovery row after it checks that it does not.
 */
const STATES: readonly OutageState[] = [
  { name: 'refusing connections', begin: (front) => front.setDown(true), uncachedStatus: 503 },
  { name: '500 on manifests+blobs', begin: fault({ path: CONTENT, kind: 'status', status: 500 }), uncachedStatus: 503 },
  { name: '503 on manifests+blobs', begin: fault({ path: CONTENT, kind: 'status', status: 503 }), uncachedStatus: 503 },
  { name: 'stalling 4 s (> headersTimeout 1 s)', begin: fault({ path: CONTENT, kind: 'slow', ms: 4_000 }), uncachedStatus: 503 },
  { name: 'token endpoint 500', begin: fault({ path: /^\/token/, kind: 'status', status: 500 }), uncachedStatus: 503 },
  {
    name: '429 pull limit (Retry-After, RateLimit-*)',
    begin: fault({
      path: MANIFESTS,
      kind: 'status',
      status: 429,
      headers: {
        'retry-after': '120',
        'ratelimit-limit': '100;w=21600',
        'ratelimit-remaining': '0;w=21600',
        'docker-ratelimit-source': '127.0.0.1',
      },
    }),
    uncachedStatus: 429,
  },
];

/** After the outage: Hub answers again, and a tag regmirror never held must come through once more. */
const RECOVERED: OutageState = { name: 'healthy again', begin: () => Promise.resolve(), uncachedStatus: 200 };

/** What a docker 20+ client accepts: any manifest type, so the mirror's answer is what any client would get. */
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Cell {
  client: string;
  state: string;
  ok: boolean;
  cached: string;
  /** The digests the client reported. */
  digests: Partial<Record<'alpine' | 'nginx', string>>;
  uncachedMirror: string;
  /** Requests the hub front answered during the cached pulls (none arrive while it refuses connections). */
  upstream: string;
  /** Why the cell failed, in full (client stderr, daemon log tail, mirror answers). */
  problems: string[];
}

const rows: Cell[] = [];
let images: E2eImages;
let uncached: ImageRef;
let front: HubFront;
const agent = new Agent({ keepAliveTimeout: 10 });

beforeAll(async () => {
  images = await pushE2eImages(inject('registryUrl'));
  // In the shared registry (pushed by global setup), never pulled through any mirror of this file.
  const { repo, tag } = inject('images').schema2;
  uncached = { repo, tag };
  front = await startHubFront({ upstream: inject('registryUrl'), auth: {} });
});

afterAll(async () => {
  console.log(renderTable(rows));
  await front?.close();
  await agent.close();
});

const seconds = (since: number): number => Math.round((performance.now() - since) / 100) / 10;

/** The one line of a client failure worth a table cell: the client's own error, not the command line or log tail. */
function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = (text.split('\n--- ')[0] ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const line = [...lines].reverse().find((l) => /error|fail|fatal|denied|unavailable|too many/i.test(l)) ?? lines[0] ?? text;
  // skopeo logs as `time="…" level=fatal msg="…"`: the message is what counts.
  return line.replace(/^time="[^"]*" level=\w+ msg=/, '').replaceAll('|', '/').slice(0, 240);
}

interface Answer {
  status: number;
  code: string | undefined;
  retryAfter: string | undefined;
  seconds: number;
}

/** regmirror's own answer to HEAD or GET of a manifest by tag, as a client with a docker 20+ Accept sees it. */
async function ask(mirror: TestMirror, image: ImageRef, method: 'HEAD' | 'GET'): Promise<Answer> {
  const started = performance.now();
  const res = await request(`${mirror.url}/v2/${image.repo}/manifests/${image.tag}`, {
    method,
    headers: { accept: ACCEPT },
    dispatcher: agent,
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  const body = await res.body.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    // A manifest, or a HEAD's empty body.
  }
  const retryAfter = res.headers['retry-after'];
  return { status: res.statusCode, code, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, seconds: seconds(started) };
}

const showAnswer = (method: string, a: Answer): string =>
  `${method} ${a.status}${a.code ? ` ${a.code}` : ''}${a.retryAfter ? ` retry-after=${a.retryAfter}` : ''} ${a.seconds}s`;

/** One cell: a fresh client pulls alpine and nginx; then, in a state, regmirror is asked for the uncached tag. */
async function runCell(
  clientName: string,
  start: StartClient,
  mirror: TestMirror,
  state: OutageState | undefined,
  expected: Record<'alpine' | 'nginx', string>,
): Promise<Cell> {
  const cell: Cell = { client: clientName, state: state?.name ?? 'healthy', ok: false, cached: '', digests: {}, uncachedMirror: '-', upstream: '', problems: [] };
  rows.push(cell);
  let client: PullClient;
  try {
    client = await start(mirror.url);
  } catch (err) {
    cell.cached = `client did not start: ${reason(err)}`;
    cell.problems.push(`client did not start: ${(err as Error).message}`);
    return cell;
  }
  try {
    const pulled: string[] = [];
    for (const [key, image] of [['alpine', images.alpine], ['nginx', images.nginx]] as const) {
      const started = performance.now();
      try {
        const digest = await client.pull(image, { allPlatforms: true });
        const took = seconds(started);
        cell.digests[key] = digest;
        pulled.push(`${key} ${took}s`);
        if (digest !== expected[key]) cell.problems.push(`${key}: pulled ${digest}, the healthy pull got ${expected[key]}`);
        if (took > CACHED_PULL_LIMIT_S) cell.problems.push(`${key}: took ${took}s (limit ${CACHED_PULL_LIMIT_S}s)`);
      } catch (err) {
        const took = seconds(started);
        // What regmirror itself answers for that tag right now, with the fault still on.
        const [head, get] = [await ask(mirror, image, 'HEAD'), await ask(mirror, image, 'GET')];
        const mirrorSays = `regmirror: ${showAnswer('HEAD', head)}, ${showAnswer('GET', get)}`;
        pulled.push(`${key} FAILED after ${took}s: ${reason(err)} [${mirrorSays}]`);
        cell.problems.push(`${key}: pull failed after ${took}s; ${mirrorSays}\n${(err as Error).message}`);
      }
    }
    cell.cached = pulled.join('; ');
    await front.idle();
    const byStatus = new Map<string, number>();
    for (const r of front.requests) {
      const label = `${r.kind} ${r.status || 'dropped'}`;
      byStatus.set(label, (byStatus.get(label) ?? 0) + 1);
    }
    cell.upstream = [...byStatus].map(([label, n]) => `${n}× ${label}`).join(', ') || 'none';

    if (state) {
      const head = await ask(mirror, uncached, 'HEAD');
      const get = await ask(mirror, uncached, 'GET');
      cell.uncachedMirror = `${showAnswer('HEAD', head)}, ${showAnswer('GET', get)}`;
      if (head.status !== state.uncachedStatus || get.status !== state.uncachedStatus) {
        // Why regmirror did not pass the question on: its breaker state, as /readyz reports it.
        const readyz = await request(`${mirror.url}/readyz`, { dispatcher: agent, headersTimeout: 15_000, bodyTimeout: 15_000 });
        cell.uncachedMirror += ` (/readyz: ${await readyz.body.text()})`;
      }
      for (const [method, a] of [['HEAD', head], ['GET', get]] as const) {
        if (a.status !== state.uncachedStatus) cell.problems.push(`uncached ${method}: regmirror answered ${a.status}, expected ${state.uncachedStatus}; ${cell.uncachedMirror}`);
        if (a.status === 429 && a.retryAfter === undefined) cell.problems.push(`uncached ${method}: 429 without Retry-After`);
        if (a.seconds > UNCACHED_ANSWER_LIMIT_S) cell.problems.push(`uncached ${method}: took ${a.seconds}s (limit ${UNCACHED_ANSWER_LIMIT_S}s)`);
      }
      // Only once Hub is back: a client's failed pull would go on to docker.io itself, off this machine.
      if (state.uncachedStatus === 200) {
        const started = performance.now();
        try {
          const digest = await client.pull(uncached);
          cell.uncachedMirror += `; ${clientName} pulled it in ${seconds(started)}s`;
          if (digest !== inject('images').schema2.digest) cell.problems.push(`uncached tag: pulled ${digest}, pushed ${inject('images').schema2.digest}`);
        } catch (err) {
          cell.uncachedMirror += `; ${clientName} FAILED after ${seconds(started)}s: ${reason(err)}`;
          cell.problems.push(`uncached tag: pull failed after ${seconds(started)}s\n${(err as Error).message}`);
        }
      }
    }
  } finally {
    await client.close();
  }
  cell.ok = cell.problems.length === 0;
  return cell;
}

describe.each(CLIENTS)('$name pulling through regmirror while Docker Hub fails', ({ name, start }) => {
  let clock = Date.now();
  let mirror: TestMirror;
  /** What this client got with upstream healthy; the pushed digests until then. */
  let healthy: Record<'alpine' | 'nginx', string>;

  beforeAll(async () => {
    healthy = { alpine: images.alpine.digest, nginx: images.nginx.digest };
    mirror = await startMirror(front.url, { config: MIRROR_CONFIG, now: () => clock });
  });

  afterAll(() => mirror?.close());

  it('pulls alpine (schema2) and nginx (OCI index) through its own mirror with Hub healthy', async () => {
    front.reset();
    const cell = await runCell(name, start, mirror, undefined, healthy);
    if (cell.ok) healthy = { alpine: cell.digests.alpine ?? healthy.alpine, nginx: cell.digests.nginx ?? healthy.nginx };
    expect(cell.problems, cell.problems.join('\n\n')).toEqual([]);
  });

  /** Moves the mirror's clock past the TTL, puts the state's fault in place for one cell, then takes it away. */
  async function underState(state: OutageState): Promise<Cell> {
    clock += STEP_MS;
    front.reset();
    try {
      await state.begin(front);
      return await runCell(name, start, mirror, state, healthy);
    } finally {
      front.setFault(undefined);
      await front.setDown(false);
    }
  }

  it.each(STATES)('hub $name: a fresh client pulls the same digests from cache past the TTL; an uncached tag fails fast', async (state) => {
    const cell = await underState(state);
    expect(cell.problems, cell.problems.join('\n\n')).toEqual([]);
  });

  it('hub healthy again: cached tags revalidate and a tag never pulled before comes through', async () => {
    const cell = await underState(RECOVERED);
    expect(cell.problems, cell.problems.join('\n\n')).toEqual([]);
  });
});

function renderTable(cells: readonly Cell[]): string {
  const header = ['client', 'Docker Hub', 'result', 'cached pulls (fresh client, past TTL)', 'uncached tag at regmirror', 'Hub saw during cached pulls'];
  const lines = cells.map((c) => [c.client, c.state, c.ok ? 'ok' : 'FAIL', c.cached, c.uncachedMirror, c.upstream]);
  const md = (cols: readonly string[]): string => `| ${cols.join(' | ')} |`;
  return ['', md(header), md(header.map(() => '---')), ...lines.map(md), ''].join('\n');
}
