// tags/list: upstream's own answer while it gives one; the tags this mirror holds when it cannot (an outage,
// a rate limit, or no upstream at all), so tools that list tags before pulling keep working through an outage.
import type { Logger } from 'pino';
import type { TagIndex } from '../index/tag-index.js';
import { RegistryError } from '../registry/errors.js';
import type { Repository } from '../registry/reference.js';
import { tagPage, type TagPage } from '../registry/tag-page.js';
import { UpstreamError } from '../upstream/errors.js';
import { OFFLINE_NOTE } from '../upstream/offline.js';
import type { Upstream } from '../upstream/upstream.js';
import { DETACHED, type ClientAbort } from './client-abort.js';

export interface TagListAnswer extends TagPage {
  /** `miss`: upstream answered; `stale`: from the tag records, because upstream could not. */
  source: 'miss' | 'stale';
}

export class TagLists {
  constructor(
    private readonly deps: {
      upstream: Upstream;
      tags: Pick<TagIndex, 'tagsOf'>;
      log: Logger;
    },
  ) {}

  async list(repo: Repository, query: string, client: ClientAbort = DETACHED): Promise<TagListAnswer> {
    const { upstream } = this.deps;
    if (upstream.offline) return (await this.held(repo, query)) ?? nameUnknown(repo, OFFLINE_NOTE);
    try {
      const list = await upstream.listTags(repo, pageQuery(query), { signal: client.signal });
      return list ? { ...list, source: 'miss' } : nameUnknown(repo);
    } catch (err) {
      if (!(err instanceof UpstreamError) || client.signal?.aborted) throw err;
      const held = await this.held(repo, query);
      if (!held) throw err;
      this.deps.log.warn({ err, repo }, 'upstream failed, listing cached tags');
      return held;
    }
  }

  private async held(repo: Repository, query: string): Promise<TagListAnswer | undefined> {
    const tags = await this.deps.tags.tagsOf(this.deps.upstream.name, repo);
    return tags.length === 0 ? undefined : { ...tagPage(repo, tags, query), source: 'stale' };
  }
}

/** What upstream is asked: the page (`n`, `last`) and nothing of ours (containerd's `ns`). */
function pageQuery(query: string): string {
  if (query === '') return '';
  const params = new URLSearchParams(query);
  const page = new URLSearchParams();
  for (const key of ['n', 'last']) {
    const value = params.get(key);
    if (value !== null) page.set(key, value);
  }
  const text = page.toString();
  return text === '' ? '' : `?${text}`;
}

function nameUnknown(repo: Repository, note?: string): never {
  const message = note ? `repository name not known to registry: ${note}` : 'repository name not known to registry';
  throw new RegistryError('NAME_UNKNOWN', message, { detail: { name: repo } });
}
