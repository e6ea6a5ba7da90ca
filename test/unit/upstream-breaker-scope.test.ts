// Issue 14, finding 5: the breaker is keyed by what failed. No answer, or 502/503/504, speaks for the host; a
// 500 for one repository's path speaks for that repository only, so one client cannot open it for everyone.
import { afterEach, describe, expect, it } from 'vitest';
import { OCI_MANIFEST } from '../../src/registry/media-types.js';
import { parseRepository } from '../../src/registry/reference.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { sampleManifest, TestClock, testClient } from '../faults/client.js';
import { registryError, startFaultServer, type FaultHandler, type FaultServer } from '../faults/server.js';

const broken = parseRepository('someone/broken');
const alpine = parseRepository('library/alpine');
const accept = { accept: OCI_MANIFEST };
const manifest = sampleManifest();

const servers: FaultServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function setup(handler: FaultHandler) {
  const server = await startFaultServer(handler);
  servers.push(server);
  const client = testClient(server.url, new TestClock(), { breakerFailures: 3, breakerCooldown: '30s' });
  clients.push(client);
  return { server, client };
}

/** 500 for someone/broken and for any repository named in `failing`; the manifest for the rest. */
function handler(failing: Set<string>, status = 500): FaultHandler {
  return (req, res) => {
    const repo = /^\/v2\/(.+?)\/manifests\//.exec(req.url ?? '')?.[1] ?? '';
    if (repo === broken || failing.has(repo)) return registryError(res, status, 'UNKNOWN');
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': manifest.digest });
    res.end(manifest.bytes);
  };
}

describe('the breaker, keyed by what failed', () => {
  it('stays closed after 10 GETs of one repository answered 500: another repository is still asked upstream', async () => {
    const { client, server } = await setup(handler(new Set()));
    for (let i = 0; i < 10; i++) await expect(client.fetchManifest(broken, 'latest', accept)).rejects.toMatchObject({ status: 500 });
    expect(client.breaker.state).toBe('closed');
    expect((await client.fetchManifest(alpine, 'latest', accept))?.digest).toBe(manifest.digest);
    expect(server.requests.at(-1)?.url).toBe(`/v2/${alpine}/manifests/latest`);
  });

  it('opens when 500s come from as many repositories as breakerFailures', async () => {
    const { client } = await setup(handler(new Set(['a/one', 'b/two'])));
    for (const repo of ['a/one', 'b/two', broken]) {
      await expect(client.fetchManifest(parseRepository(repo), 'latest', accept)).rejects.toMatchObject({ status: 500 });
    }
    expect(client.breaker.state).toBe('open');
  });

  it('opens on 503s from the host, whichever repository asked', async () => {
    const { client } = await setup(handler(new Set(), 503));
    for (let i = 0; i < 3; i++) await expect(client.resolveManifest(broken, 'latest', accept)).rejects.toMatchObject({ status: 503 });
    expect(client.breaker.state).toBe('open');
    await expect(client.resolveManifest(alpine, 'latest', accept)).rejects.toMatchObject({ status: undefined });
  });
});
