// One page of a tag list (distribution-spec "Listing Tags"): tags in lexical order, at most `n`, after `last`,
// with a Link header to the next page when more remain.
import { RegistryError } from './errors.js';

export interface TagPage {
  body: Buffer;
  /** `</v2/<name>/tags/list?n=…&last=…>; rel="next"`, when more tags follow. */
  link: string | undefined;
}

/** Far above any real repository, so a client's `n` cannot make us build a huge answer. */
const MAX_PAGE = 10_000;

/** `query` is the raw query string with its `?`, or ''. `tags` must be sorted. */
export function tagPage(name: string, tags: readonly string[], query: string): TagPage {
  const params = new URLSearchParams(query);
  const last = params.get('last');
  const n = pageSize(params.get('n'));
  const after = last === null ? tags : tags.filter((tag) => tag > last);
  const page = after.slice(0, n ?? MAX_PAGE);
  const more = page.length > 0 && page.length < after.length;
  const next = more ? `</v2/${name}/tags/list?n=${page.length}&last=${encodeURIComponent(page.at(-1) ?? '')}>; rel="next"` : undefined;
  return { body: Buffer.from(JSON.stringify({ name, tags: page })), link: next };
}

function pageSize(text: string | null): number | undefined {
  if (text === null || text === '') return undefined;
  if (!/^\d{1,9}$/.test(text)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { detail: { n: text } });
  }
  return Math.min(Number(text), MAX_PAGE);
}
