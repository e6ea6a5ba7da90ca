// regmirror status page: polls the mirror's own /api/v1/ (same origin, nothing else) and draws what it says.
// Every value reaches the DOM through textContent or an attribute, never innerHTML: repository names and tags
// come from upstream registries and clients.
'use strict';
(function () {
  const STATUS_MS = 3000;
  const HISTORY_MS = 10000;
  const IMAGES_MS = 15000;
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  /** Rows asked of the server per poll: it filters, sorts and cuts; the page shows "N of M". */
  const IMAGES_LIMIT = 500;
  const FILTER_DELAY_MS = 300;
  const state = {
    images: [],
    total: 0,
    matched: 0,
    note: '',
    sort: { key: 'pulledAt', dir: -1 },
    filter: '',
    lastOk: 0,
    status: undefined,
  };

  // ---- formatting ----
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function bytes(n) {
    if (n === null || n === undefined) return '—';
    let value = n;
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
      value /= 1024;
      unit++;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
  }
  function percent(ratio) {
    return ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(1)} %`;
  }
  function count(n) {
    return n === null || n === undefined ? '—' : new Intl.NumberFormat('en').format(n);
  }
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }
  function ago(ms, now) {
    return ms === null || ms === undefined ? 'never' : `${duration((now - ms) / 1000)} ago`;
  }
  function shortDigest(digest) {
    const [algo, hex] = String(digest).split(':');
    return hex ? `${algo}:${hex.slice(0, 12)}` : String(digest);
  }

  // ---- DOM helpers ----
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function row(cells) {
    const tr = document.createElement('tr');
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
    return tr;
  }
  function setText(id, text, value) {
    const node = $(id);
    node.textContent = text;
    if (value !== undefined) node.dataset.value = value === null ? '' : String(value);
  }
  function emptyRow(tbody, columns, text) {
    const td = el('td', text, 'empty');
    td.colSpan = columns;
    tbody.replaceChildren(row([td]));
  }

  // ---- data ----
  async function getJson(path) {
    const response = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function markOk() {
    state.lastOk = Date.now();
    const node = $('state');
    node.classList.remove('error');
    node.textContent = 'live';
  }
  function markError(err) {
    const node = $('state');
    node.classList.add('error');
    const since = state.lastOk ? ` (last update ${duration((Date.now() - state.lastOk) / 1000)} ago)` : '';
    node.textContent = `cannot reach the mirror: ${err.message}${since}`;
  }

  // ---- rendering ----
  function renderStatus(s) {
    state.status = s;
    setText('hit-ratio', percent(s.requests.hitRatio), s.requests.hitRatio);
    setText('hit-detail', `${count(s.requests.hits)} hits · ${count(s.requests.misses)} misses`);
    setText('byte-ratio', percent(s.bytes.hitRatio), s.bytes.hitRatio);
    setText('byte-detail', `last hour: ${percent(s.lastHour.byteHitRatio)} of bytes, ${percent(s.lastHour.hitRatio)} of requests`);
    setText('bytes-saved', bytes(s.bytes.saved), s.bytes.saved);
    setText('served-total', bytes(s.bytes.fromCache + s.bytes.fromUpstream), s.bytes.fromCache + s.bytes.fromUpstream);
    setText('served-cache', bytes(s.bytes.fromCache), s.bytes.fromCache);
    setText('served-upstream', bytes(s.bytes.fromUpstream), s.bytes.fromUpstream);
    renderUpstreams(s);
    renderDownloads(s);
    renderDisk(s);
    renderFooter(s);
  }

  function renderUpstreams(s) {
    const tbody = $('upstreams').tBodies[0];
    tbody.replaceChildren(
      ...s.upstreams.map((u) => {
        const name = el('td');
        name.append(el('strong', u.name), el('span', ` ${u.url}`, 'small'));
        const limit = u.rateLimit;
        let limitText = 'not reported';
        if (limit) {
          limitText = `${count(limit.remaining)} / ${count(limit.limit)}`;
          if (limit.windowSeconds !== null) limitText += `, per ${duration(limit.windowSeconds)}`;
          if (limit.limitedForSeconds > 0) limitText += ` · limited for ${duration(limit.limitedForSeconds)}`;
        }
        const breaker = el('td', u.breaker, `breaker-${u.breaker}`);
        return row([name, el('td', count(u.pullsSpent), 'num'), el('td', count(u.pullsSpared), 'num'), limitText, breaker]);
      }),
    );
  }

  function renderDownloads(s) {
    const tbody = $('downloads').tBodies[0];
    setText('downloads-count', s.downloads.length ? `(${s.downloads.length})` : '');
    if (s.downloads.length === 0) return emptyRow(tbody, 6, 'nothing downloading');
    tbody.replaceChildren(
      ...s.downloads.map((d) => {
        const digest = el('td', shortDigest(d.digest));
        digest.title = d.digest;
        const progress = document.createElement('progress');
        if (d.size) {
          progress.max = d.size;
          progress.value = d.bytes;
        }
        const bar = el('td');
        bar.append(progress, el('span', d.size ? ` ${((d.bytes / d.size) * 100).toFixed(0)} %` : '', 'small'));
        const tr = row([
          digest,
          el('td', `${d.registry}/${d.repository}`, 'wrap'),
          bar,
          el('td', `${bytes(d.bytes)} / ${bytes(d.size)}`, 'num'),
          el('td', `${bytes(d.bytesPerSecond)}/s`, 'num'),
          el('td', count(d.clients), 'num'),
        ]);
        tr.dataset.digest = d.digest;
        return tr;
      }),
    );
  }

  function renderDisk(s) {
    const d = s.disk;
    const quota = d.quotaBytes;
    const position = (value) => `${Math.min(100, (value / quota) * 100).toFixed(2)}%`;
    $('disk-used-bar').style.width = quota ? position(d.usedBytes) : '0';
    for (const [id, mark] of [['disk-high', d.highWatermarkBytes], ['disk-low', d.lowWatermarkBytes]]) {
      const node = $(id);
      node.style.display = quota && mark !== null ? 'block' : 'none';
      if (quota && mark !== null) node.style.left = position(mark);
    }
    const parts = [`${bytes(d.usedBytes)} used in ${count(d.blobs)} files`];
    parts.push(quota ? `quota ${bytes(quota)} (evicts above ${bytes(d.highWatermarkBytes)} down to ${bytes(d.lowWatermarkBytes)})` : 'no quota');
    parts.push(`pinned ${bytes(d.pinnedBytes)}`);
    parts.push(d.lastGc ? `last GC ${ago(d.lastGc.at, s.now)}: ${count(d.lastGc.removed)} files, ${bytes(d.lastGc.bytes)} freed` : 'no GC since start');
    setText('disk-text', parts.join(' · '));
  }

  function renderFooter(s) {
    setText('footer-version', `regmirror ${s.version} · up ${duration(s.uptimeSeconds)}`);
    const c = s.config;
    const entries = [
      ['listen', `${c.listen}${c.tls ? ' (TLS)' : ''}`],
      ['data', c.dataDir],
      ['registries', c.registries.map((r) => `${r.name} → ${r.offline ? 'offline' : r.url} (tag TTL ${duration(r.tagTtlSeconds)}${r.account ? ', account' : ''})`).join('; ')],
      ['tags', `TTL ${duration(c.tags.ttlSeconds)}, max stale ${duration(c.tags.maxStaleSeconds)}`],
      ['cache', `${c.cache.quotaBytes === null ? 'no quota' : `quota ${bytes(c.cache.quotaBytes)}`}, watermarks ${c.cache.lowWatermark}–${c.cache.highWatermark}, GC ${c.cache.gcIntervalSeconds === null ? 'off' : `every ${duration(c.cache.gcIntervalSeconds)}`}`],
      ['auth', c.auth.enabled ? 'on' : 'off'],
      ['admin', `socket ${c.admin.socket ? 'on' : 'off'}, network ${c.admin.network ? 'on' : 'off'}`],
    ];
    $('config').replaceChildren(...entries.flatMap(([k, v]) => [el('dt', k), el('dd', v)]));
  }

  // Bars: bytes per 10 s (cache below, upstream on top); line: share of requests answered from cache, 0–100 %
  // of the height. One unit of the viewBox per interval, stretched to the box (labels are HTML, not SVG text).
  function renderChart(history) {
    const points = history.points;
    const slots = history.capacity;
    const height = 100;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${slots} ${height}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'bytes served and request hit ratio over the last hour');
    const maxBytes = Math.max(1, ...points.map((p) => p.cacheBytes + p.upstreamBytes));
    const offset = slots - points.length;
    const line = [];
    points.forEach((p, i) => {
      const x = offset + i;
      const cacheH = (p.cacheBytes / maxBytes) * height;
      const upH = (p.upstreamBytes / maxBytes) * height;
      if (cacheH > 0) svg.append(shape('rect', { x, y: height - cacheH, width: 1, height: cacheH }, 'cache'));
      if (upH > 0) svg.append(shape('rect', { x, y: height - cacheH - upH, width: 1, height: upH }, 'upstream'));
      const total = p.hits + p.misses;
      if (total > 0) line.push([x + 0.5, height - (p.hits / total) * height]);
    });
    if (line.length === 1) {
      const [[x, y]] = line;
      svg.append(shape('rect', { x: x - 0.5, y: y - 1, width: 1, height: 2 }, 'dot'));
    } else if (line.length > 1) {
      const path = shape('polyline', {}, 'ratio');
      path.setAttribute('points', line.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(' '));
      svg.append(path);
    }
    svg.append(shape('line', { x1: 0, y1: height, x2: slots, y2: height }, 'axis'));
    $('chart').replaceChildren(svg);
    setText('chart-max', `${bytes(maxBytes)} per 10 s`);
    const s = state.status;
    if (s) setText('hour-summary', `${percent(s.lastHour.hitRatio)} of requests, ${percent(s.lastHour.byteHitRatio)} of bytes from cache over ${duration(s.lastHour.seconds)}`);
  }
  function shape(tag, attributes, className) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, typeof v === 'number' ? v.toFixed(2) : v);
    node.setAttribute('class', className);
    return node;
  }

  function renderImages() {
    const { key, dir } = state.sort;
    const needle = state.filter.trim().toLowerCase();
    const rows = state.images.filter((i) => !needle || `${i.name} ${i.registry} ${i.digest}`.toLowerCase().includes(needle));
    rows.sort((a, b) => {
      const x = a[key] ?? -Infinity;
      const y = b[key] ?? -Infinity;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    // The server sent the first IMAGES_LIMIT of `matched` (filtered and sorted there); while a new filter is on its
    // way, the rows already here are filtered as typed.
    const complete = state.matched <= state.images.length;
    let counted = rows.length === state.images.length ? `${rows.length}` : `${rows.length} of ${state.images.length}`;
    if (!complete && rows.length === state.images.length) counted = `showing ${rows.length} of ${count(state.matched)}`;
    if (state.total > state.matched && rows.length === state.images.length) counted += ` (${count(state.total)} in all)`;
    setText('images-count', `(${counted}${state.note})`);
    for (const button of document.querySelectorAll('#images th button')) {
      if (button.dataset.sort === key) button.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      else button.removeAttribute('aria-sort');
    }
    const tbody = $('images').tBodies[0];
    if (rows.length === 0) return emptyRow(tbody, 6, state.images.length ? 'no image matches' : 'no image cached yet');
    const now = state.status ? state.status.now : Date.now();
    tbody.replaceChildren(
      ...rows.map((i) => {
        const name = el('td', i.name, 'wrap');
        name.title = i.digest;
        const tr = row([name, el('td', i.registry), el('td', bytes(i.size), 'num'), ago(i.pulledAt, now), el('td', count(i.pulls), 'num'), i.pinned ? 'pinned' : '']);
        tr.dataset.name = i.name;
        return tr;
      }),
    );
  }

  async function fetchImages() {
    const { key, dir } = state.sort;
    const ask = (sortKey) =>
      getJson(`/api/v1/images?q=${encodeURIComponent(state.filter.trim())}&sort=${sortKey}&order=${dir > 0 ? 'asc' : 'desc'}&limit=${IMAGES_LIMIT}`);
    let list;
    state.note = '';
    try {
      list = await ask(key);
    } catch (err) {
      // Sorting by size sizes every matching image: refused for too many; the rows shown are sorted here instead.
      if (key !== 'size') throw err;
      list = await ask('pulledAt');
      state.note = ', size order among those shown';
    }
    state.images = list.images;
    state.total = list.total;
    state.matched = list.matched;
    renderImages();
  }
  let filterTimer;
  function refetchImages(delay) {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => fetchImages().then(markOk, markError), delay);
  }

  // ---- loops ----
  function every(ms, task) {
    const run = () => {
      task()
        .then(markOk, markError)
        .finally(() => setTimeout(run, ms));
    };
    run();
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const button of document.querySelectorAll('#images th button')) {
      button.addEventListener('click', () => {
        const key = button.dataset.sort;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === 'name' || key === 'registry' ? 1 : -1 };
        renderImages();
        refetchImages(0);
      });
    }
    $('filter').addEventListener('input', (event) => {
      state.filter = event.target.value;
      renderImages();
      refetchImages(FILTER_DELAY_MS);
    });
    every(STATUS_MS, async () => renderStatus(await getJson('/api/v1/status')));
    every(HISTORY_MS, async () => renderChart(await getJson('/api/v1/history')));
    every(IMAGES_MS, fetchImages);
  });
})();
