// The status page in a real browser (Debian's chromium driven by playwright-core, no browser download) against a
// mirror that pulled real images from a real registry (distribution behind the Hub-like front): the figures equal
// /metrics, a download in flight shows its progress, nothing leaves the mirror's origin, the console stays clean.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import bcrypt from 'bcryptjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHubFront, type HubFront } from '../fixtures/hub-front.js';
import { metricValue, startMirror, type TestMirror } from '../fixtures/mirror.js';
import { getBlob, pull } from '../fixtures/puller.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'];
/** Stable, git-ignored: CI keeps it as an artifact. */
const SCREENSHOT = resolve('test-artifacts/status-page.png');

let front: HubFront;
let mirror: TestMirror;
let browser: Browser;

beforeAll(async () => {
  // Docker Hub's pull accounting on, so the page has a rate limit to show.
  front = await startHubFront({ upstream: inject('registryUrl'), rateLimit: { limit: 100, windowSeconds: 21600 } });
  // A quota (the disk bar and its watermarks) and a pin (pinned bytes).
  mirror = await startMirror(front.url, { config: { cache: { maxBytes: '256MiB', pins: ['someuser/app:v1'] } } });
  // launch() makes a new empty profile (user data dir) and removes it on close.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
  await front?.close();
});

/** The page, with every request URL and every console error or uncaught exception recorded. */
async function openPage(url: string, options: { httpCredentials?: { username: string; password: string } } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1500 }, ...options });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  const response = await page.goto(url);
  return { page, requests, errors, status: response?.status(), close: () => context.close() };
}

/** As the page formats them (app.js): the figures must read the same, not just be near. */
function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)} %`;
}
function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();

describe('the status page in headless Chromium', () => {
  it('lists both pulled images and shows the hit ratio and bytes saved exactly as /metrics counts them', async () => {
    const images = inject('images');
    // Two real images, cold, then one of them again: misses and hits, bytes from upstream and from cache.
    await pull(mirror.url, images.schema2.repo, images.schema2.tag);
    await pull(mirror.url, images.user.repo, images.user.tag);
    await pull(mirror.url, images.schema2.repo, images.schema2.tag);
    // One point of the last-hour chart now, rather than waiting 10 s for the sampler.
    await mirror.mirror.status?.history.sample();

    const { page, requests, errors, status, close } = await openPage(`${mirror.url}/`);
    try {
      expect(status).toBe(200);
      const rows = page.locator('#images tbody tr[data-name]');
      await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(2);
      expect((await rows.allInnerTexts()).join('\n')).toMatch(/schema2:1[\s\S]*someuser\/app:v1|someuser\/app:v1[\s\S]*schema2:1/);
      await expect.poll(() => text(page, '#hit-ratio'), { timeout: 15_000 }).toMatch(/^\d+\.\d %$/);

      // Nothing pulls between the page's last poll and this scrape: the counters are still.
      const metrics = await mirror.metrics();
      const hits = metricValue(metrics, 'regmirror_cache_requests_total', { result: 'hit' });
      const misses =
        metricValue(metrics, 'regmirror_cache_requests_total', { result: 'miss' }) + metricValue(metrics, 'regmirror_cache_requests_total', { result: 'coalesced' });
      const fromCache = metricValue(metrics, 'regmirror_served_bytes_total', { source: 'cache' });
      const fromUpstream = metricValue(metrics, 'regmirror_served_bytes_total', { source: 'upstream' });
      expect(hits).toBeGreaterThan(0);
      expect(fromCache).toBeGreaterThan(0);
      expect(await text(page, '#hit-ratio')).toBe(percent(hits / (hits + misses)));
      expect(await page.locator('#hit-ratio').getAttribute('data-value')).toBe(String(hits / (hits + misses)));
      expect(await text(page, '#byte-ratio')).toBe(percent(fromCache / (fromCache + fromUpstream)));
      expect(await text(page, '#bytes-saved')).toBe(bytes(fromCache));
      expect(await page.locator('#bytes-saved').getAttribute('data-value')).toBe(String(fromCache));
      expect(await page.locator('#served-upstream').getAttribute('data-value')).toBe(String(fromUpstream));
      expect(await text(page, '#served-total')).toBe(bytes(fromCache + fromUpstream));
      // Pulls spared per registry: the table says what the counter says.
      const spared = metricValue(metrics, 'regmirror_pulls_spared_total', { registry: 'docker.io' });
      expect(spared).toBeGreaterThan(0);
      expect(await page.locator('#upstreams tbody tr').first().locator('td').nth(2).innerText()).toBe(String(spared));
      // Rate limit as upstream reported it, the same gauges /metrics shows.
      const remaining = metricValue(metrics, 'regmirror_upstream_ratelimit_remaining', { registry: 'docker.io' });
      const limit = metricValue(metrics, 'regmirror_upstream_ratelimit_limit', { registry: 'docker.io' });
      expect(limit).toBe(100);
      expect(await page.locator('#upstreams tbody tr').first().innerText()).toContain(`${remaining} / ${limit}, per 6 h 0 min`);
      // Disk: what the index holds, the quota, and the pinned image's closure.
      const snapshot = (await (await request(`${mirror.url}/api/v1/status`)).body.json()) as { disk: { pinnedBytes: number; usedBytes: number } };
      expect(snapshot.disk.usedBytes).toBe(metricValue(metrics, 'regmirror_store_bytes'));
      expect(snapshot.disk.pinnedBytes).toBeGreaterThan(0);
      const disk = await text(page, '#disk-text');
      expect(disk).toContain(`${bytes(snapshot.disk.usedBytes)} used`);
      expect(disk).toContain('quota 256 MiB');
      expect(disk).toContain(`pinned ${bytes(snapshot.disk.pinnedBytes)}`);
      expect(await page.locator('#images tbody tr[data-name="someuser/app:v1"]').innerText()).toMatch(/pinned/);
      // The chart drew the sampled interval.
      await expect.poll(() => page.locator('#chart svg rect').count(), { timeout: 15_000 }).toBeGreaterThan(0);
      // Sorting and filtering work on the rendered list.
      await page.fill('#filter', 'someuser');
      expect(await rows.allInnerTexts()).toHaveLength(1);
      await page.fill('#filter', '');
      await page.click('#images th button[data-sort="name"]');
      expect((await rows.allInnerTexts())[0]).toMatch(/^schema2:1/);

      expect(errors).toEqual([]);
      const foreign = requests.filter((url) => !url.startsWith(`${mirror.url}/`));
      expect(foreign).toEqual([]);
      expect(requests.length).toBeGreaterThan(3);
    } finally {
      await close();
    }
  });

  it('shows a download in flight with its digest and a progress bar that has moved, while it runs', async () => {
    const amd64 = inject('images').multi.platforms.find((p) => p.architecture === 'amd64');
    const layer = amd64?.layers.at(-1);
    if (!layer) throw new Error('no 30 MiB layer in the test images');
    // A slow upstream: the 30 MiB layer takes ~30 s, so the page sees it mid-way with time to spare on a loaded machine.
    front.setBandwidth(2 ** 20);
    const download = getBlob(mirror.url, inject('images').multi.repo, layer.digest);
    const { page, requests, errors, close } = await openPage(`${mirror.url}/`);
    try {
      const row = page.locator(`#downloads tbody tr[data-digest="${layer.digest}"]`);
      await row.waitFor({ timeout: 15_000 });
      const progress = row.locator('progress');
      await expect.poll(async () => Number(await progress.getAttribute('value')), { timeout: 15_000 }).toBeGreaterThan(0);
      const value = Number(await progress.getAttribute('value'));
      expect(Number(await progress.getAttribute('max'))).toBe(layer.size);
      expect(value).toBeLessThan(layer.size);
      expect(await row.innerText()).toContain(layer.digest.slice(0, 'sha256:'.length + 12));
      expect(await row.innerText()).toMatch(/library\/multi/);
      // The client reading it is attached.
      expect(await row.locator('td').nth(5).innerText()).toBe('1');

      await mkdir('test-artifacts', { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`status page screenshot: ${SCREENSHOT}`);

      front.setBandwidth(undefined);
      expect(await download).toBe(layer.size);
      // Done: the row goes at the next poll.
      await expect.poll(() => row.count(), { timeout: 15_000 }).toBe(0);
      expect(errors).toEqual([]);
      expect(requests.filter((url) => !url.startsWith(`${mirror.url}/`))).toEqual([]);
    } finally {
      front.setBandwidth(undefined);
      await close();
    }
  });
});

describe('the status page with client authentication', () => {
  let dir: string;
  let guarded: TestMirror;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-status-auth-'));
    await writeFile(join(dir, 'htpasswd'), `ops:${bcrypt.hashSync('wallscreen', 4)}\n`);
    guarded = await startMirror(front.url, { config: { auth: { htpasswd: join(dir, 'htpasswd'), anonymous: ['docker.io/*'] } } });
  });
  afterAll(async () => {
    await guarded?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 401 with a Basic challenge without credentials, and renders the page for a user of the htpasswd file', async () => {
    const images = inject('images');
    await pull(guarded.url, images.user.repo, images.user.tag);
    for (const path of ['/', '/api/v1/status', '/api/v1/images']) {
      const response = await request(`${guarded.url}${path}`);
      await response.body.dump();
      expect([path, response.statusCode, response.headers['www-authenticate']]).toEqual([path, 401, 'Basic realm="regmirror"']);
    }
    const { page, status, errors, close } = await openPage(`${guarded.url}/`, { httpCredentials: { username: 'ops', password: 'wallscreen' } });
    try {
      expect(status).toBe(200);
      await page.locator('#images tbody tr[data-name="someuser/app:v1"]').waitFor({ timeout: 15_000 });
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });
});
