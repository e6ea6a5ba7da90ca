// How long a tag's digest is trusted: the first rule whose pattern matches `repository:tag`, else the default.
import type { TagsConfig } from '../config/schema.js';
import { globToRegExp } from '../registry/repository-glob.js';

export type TagTtl = (repo: string, tag: string) => number;

/**
 * Patterns are globs over `repository:tag`, `*` matching anything (slashes included). Docker Hub's official
 * images match both as `library/alpine:3.19` and as `alpine:3.19`, the way users write them.
 */
export function tagTtlPolicy(config: Pick<TagsConfig, 'ttl' | 'rules'>): TagTtl {
  const rules = config.rules.map((rule) => ({ pattern: globToRegExp(rule.match), ttl: rule.ttl }));
  return (repo, tag) => {
    const names = [`${repo}:${tag}`];
    if (repo.startsWith('library/')) names.push(`${repo.slice('library/'.length)}:${tag}`);
    for (const rule of rules) if (names.some((name) => rule.pattern.test(name))) return rule.ttl;
    return config.ttl;
  };
}
