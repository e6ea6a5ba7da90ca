// Globs over repository names, as config writes them (tag TTL rules, allow lists): `*` matches anything,
// slashes included, so `myorg/*` takes `myorg/team/app` too.
import type { Repository } from './reference.js';

export function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

/**
 * Whether a repository is on an allow list; no list allows every repository. Docker Hub's official images match
 * as `library/alpine` and as `alpine`, the way users write them (as tag rules do).
 */
export function repositoryAllowed(allow: readonly string[] | undefined): (repo: Repository) => boolean {
  if (allow === undefined) return () => true;
  const patterns = allow.map(globToRegExp);
  return (repo) => {
    const short = repo.startsWith('library/') ? repo.slice('library/'.length) : undefined;
    return patterns.some((p) => p.test(repo) || (short !== undefined && p.test(short)));
  };
}
