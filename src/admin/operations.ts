// The administration of one cache: list, pin, delete, revalidate, GC, seed, export, import. One implementation,
// driven by the running mirror's admin API (routes.ts) and by the CLI when the mirror is stopped (app.ts
// openAdmin), so both give the same results; the CLI's socket client (cli/admin-client.ts) speaks the same
// `AdminApi` over HTTP. User mistakes are RegistryErrors (a status and a message), never plain Errors.
import type { Writable } from 'node:stream';
import type { GcReport, RemovalReport, Retention } from '../cache/retention.js';
import type { TagRevalidation } from '../cache/manifests.js';
import type { InUse } from '../cache/in-use.js';
import type { PinIndex } from '../index/pin-index.js';
import type { TagIndex } from '../index/tag-index.js';
import { RegistryError } from '../registry/errors.js';
import { parseImageReference, type Digest, type ImageReference, type Repository, type Tag } from '../registry/reference.js';
import { writeBundle } from '../seed/export.js';
import { importBundle, type ImportDeps, type ImportSummary } from '../seed/import.js';
import { allRoots, closure, rootsFor, type AllRootsDeps, type ClosureDeps } from '../seed/oci-layout.js';
import { seedImage, type ImageSeedResult, type Platform, type SeedDeps, type SeedProgress } from '../seed/seed.js';
import { listImages, type ImageListDeps, type ImageRow } from './images.js';

export interface ImagesResult {
  dataDir: string;
  images: ImageRow[];
}

export interface PinRow {
  ref: string;
  /** ms since epoch; undefined for a pin from the config's `cache.pins`. */
  pinnedAt: number | undefined;
  fromConfig: boolean;
}

export interface PinChange {
  ref: string;
  /** pin: newly pinned (false: it already was); unpin: removed (false: it was not pinned). */
  changed: boolean;
}

export interface DeleteResult {
  ref: string;
  what: 'tag' | 'image';
  /** Tag records removed (one per Accept class the tag was cached under). */
  records: number;
  /** The digests those records named. */
  digests: Digest[];
  /** With what 'image': the content removed and what was kept. */
  content?: RemovalReport;
}

export interface RevalidateResult {
  ref: string;
  records: TagRevalidation[];
}

export interface SeedSummary {
  images: ImageSeedResult[];
  blobs: number;
  bytesFetched: number;
  bytesCached: number;
  /** Manifest GETs upstream answered with 200 during this seed. */
  pullsSpent: number;
}

/** What to export: named images, every pinned one, or every cached tag; `have`: digests the far side holds. */
export interface ExportRequest {
  refs?: string[];
  which?: 'pinned' | 'all';
  have?: string[];
}

/** Known before a byte is written, since the closure is computed first (the API sends it as a header). */
export interface ExportPlan {
  roots: Array<{ ref: string; digest: Digest }>;
  images: number;
  blobs: number;
  /** Blob bytes to write. */
  bytes: number;
  /** Blobs left out because the far side has them. */
  skipped: number;
}

/** The operations as the CLI and the admin API see them. */
export interface AdminApi {
  images(): Promise<ImagesResult>;
  pins(): Promise<PinRow[]>;
  pin(refs: string[]): Promise<PinChange[]>;
  unpin(refs: string[]): Promise<PinChange[]>;
  delete(ref: string, what: 'tag' | 'image'): Promise<DeleteResult>;
  revalidate(ref: string): Promise<RevalidateResult>;
  gc(dryRun: boolean): Promise<GcReport>;
  seed(refs: string[], platforms: Platform[] | 'all', progress: SeedProgress, onImage?: (result: ImageSeedResult) => void): Promise<SeedSummary>;
  /** Plans the export, then writes the tar to the stream `open(plan)` gives (not ended). */
  exportBundle(request: ExportRequest, open: (plan: ExportPlan) => Writable, onBytes?: (n: number) => void): Promise<ExportPlan>;
  /** Imports a tar or OCI layout directory at `source` (a path on the mirror's host). */
  importBundle(source: string, onBytes?: (n: number) => void): Promise<ImportSummary>;
}

/** One registry's part in administration: its pull path (seed) and its tag revalidation. */
export interface AdminRegistry {
  readonly offline: boolean;
  seedDeps: SeedDeps;
  revalidateTag(repo: Repository, tag: Tag): Promise<TagRevalidation[]>;
}

export interface AdminDeps {
  dataDir: string;
  images: ImageListDeps;
  tags: Pick<TagIndex, 'entriesFor' | 'deleteTag'>;
  pins: Pick<PinIndex, 'list' | 'add' | 'remove'>;
  configPins: readonly string[];
  retention: Pick<Retention, 'gc' | 'removeUnreferenced'>;
  registries: ReadonlyMap<string, AdminRegistry>;
  /** Manifest GETs spent upstream so far, all registries. */
  pullsSpent(): number;
  exporting: AllRootsDeps & ClosureDeps;
  importing: ImportDeps;
  /** Held on what an export streams, so that a GC or delete meanwhile cannot take it from under the tar. */
  inUse: Pick<InUse, 'hold' | 'release'>;
  /** Writes batched statistics, so that `images` and GC see the latest pulls. */
  flush(): Promise<void>;
  now?: () => number;
}

export class AdminOperations implements AdminApi {
  private readonly now: () => number;
  private importing: Promise<unknown> = Promise.resolve();
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly deps: AdminDeps) {
    this.now = deps.now ?? Date.now;
  }

  async images(): Promise<ImagesResult> {
    await this.deps.flush();
    return { dataDir: this.deps.dataDir, images: await listImages(this.deps.images) };
  }

  async pins(): Promise<PinRow[]> {
    const stored = (await this.deps.pins.list()).map((p): PinRow => ({ ref: p.ref, pinnedAt: p.pinnedAt, fromConfig: false }));
    const configured = this.deps.configPins.map((p): PinRow => ({ ref: parseImageReference(p).canonical, pinnedAt: undefined, fromConfig: true }));
    return [...stored, ...configured];
  }

  async pin(refs: string[]): Promise<PinChange[]> {
    const parsed = references(refs);
    const changes: PinChange[] = [];
    for (const ref of parsed) changes.push({ ref: ref.canonical, changed: await this.deps.pins.add(ref.canonical, this.now()) });
    return changes;
  }

  async unpin(refs: string[]): Promise<PinChange[]> {
    const parsed = references(refs);
    const changes: PinChange[] = [];
    for (const ref of parsed) changes.push({ ref: ref.canonical, changed: await this.deps.pins.remove(ref.canonical) });
    return changes;
  }

  /**
   * Removes a tag's records, every Accept class: the next pull asks upstream. With 'image', also the content
   * only it reached. A client pulling it meanwhile finishes: what it streams is in use and stays, and what it
   * asks for next comes from upstream again.
   */
  delete(text: string, what: 'tag' | 'image'): Promise<DeleteResult> {
    return this.track(async () => {
      const { ref, tag } = tagReference(text);
      const entries = await this.deps.tags.entriesFor(ref.registry, ref.repo, tag);
      if (entries.length === 0) throw notCached(ref);
      // A pinned tag resolves through its record: deleting it would quietly unpin what a person pinned.
      if ((await this.pins()).some((p) => p.ref === ref.canonical)) {
        throw new RegistryError('DENIED', `${ref.canonical} is pinned: unpin it first`, { detail: { ref: ref.canonical } });
      }
      const digests = [...new Set(entries.map((e) => e.digest))];
      await this.deps.tags.deleteTag(ref.registry, ref.repo, tag);
      const result: DeleteResult = { ref: ref.canonical, what, records: entries.length, digests };
      if (what !== 'image') return result;
      // Online, a pull in progress fetches what it still needs from upstream again. Offline nothing could
      // bring it back: an image pulled in the last minutes keeps its content (GC takes it once idle).
      const offline = this.deps.registries.get(ref.registry)?.offline ?? true;
      const activeSince = offline ? this.now() - ACTIVE_PULL_MS : undefined;
      result.content = await this.deps.retention.removeUnreferenced(digests, { activeSince });
      return result;
    });
  }

  async revalidate(text: string): Promise<RevalidateResult> {
    const { ref, tag } = tagReference(text);
    const registry = this.deps.registries.get(ref.registry);
    if (!registry) throw notServed(ref);
    const records = await registry.revalidateTag(ref.repo, tag);
    if (records.length === 0) throw notCached(ref);
    return { ref: ref.canonical, records };
  }

  async gc(dryRun: boolean): Promise<GcReport> {
    await this.deps.flush();
    return this.deps.retention.gc({ dryRun });
  }

  /** Seeds through the registries' own pull path (shared downloads, pull accounting), then pins, one by one. */
  async seed(refs: string[], platforms: Platform[] | 'all', progress: SeedProgress, onImage: (result: ImageSeedResult) => void = () => undefined): Promise<SeedSummary> {
    const parsed = references(refs);
    if (parsed.length === 0) throw new RegistryError('BAD_REQUEST', 'name at least one image');
    for (const ref of parsed) {
      const registry = this.deps.registries.get(ref.registry);
      if (!registry) throw notServed(ref);
      if (registry.offline) throw new RegistryError('UNSUPPORTED', `${ref.registry} is offline here (upstream "none"): nothing to seed from`);
    }
    return this.track(() => this.seedAll(parsed, platforms, progress, onImage));
  }

  private async seedAll(parsed: ImageReference[], platforms: Platform[] | 'all', progress: SeedProgress, onImage: (result: ImageSeedResult) => void): Promise<SeedSummary> {
    const spentBefore = this.deps.pullsSpent();
    const summary: SeedSummary = { images: [], blobs: 0, bytesFetched: 0, bytesCached: 0, pullsSpent: 0 };
    for (const ref of parsed) {
      const deps = (this.deps.registries.get(ref.registry) as AdminRegistry).seedDeps;
      const result = await seedImage(deps, ref, platforms, progress);
      summary.images.push(result);
      summary.blobs += result.blobs;
      summary.bytesFetched += result.bytesFetched;
      summary.bytesCached += result.bytesCached;
      onImage(result);
    }
    summary.pullsSpent = this.deps.pullsSpent() - spentBefore;
    return summary;
  }

  async exportBundle(request: ExportRequest, open: (plan: ExportPlan) => Writable, onBytes: (n: number) => void = () => undefined): Promise<ExportPlan> {
    const deps = this.deps.exporting;
    const refs = request.refs ?? [];
    if ((refs.length > 0 ? 1 : 0) + (request.which ? 1 : 0) !== 1) throw new RegistryError('BAD_REQUEST', 'name images, or pinned, or all (one of them)');
    const names = references(refs).map((r) => r.canonical);
    const roots = request.which ? await allRoots(deps, request.which) : await rootsFor(deps, names);
    const digests = await closure(deps, roots);
    const have = new Set(request.have ?? []);
    const plan: ExportPlan = { roots: roots.map((r) => ({ ref: r.ref, digest: r.digest })), images: roots.length, blobs: 0, bytes: 0, skipped: 0 };
    for (const [digest, size] of digests) {
      if (have.has(digest)) plan.skipped++;
      else {
        plan.blobs++;
        plan.bytes += size;
      }
    }
    const held = [...digests.keys()];
    for (const digest of held) this.deps.inUse.hold(digest);
    try {
      await writeBundle(deps, roots, have, open(plan), onBytes);
    } finally {
      for (const digest of held) this.deps.inUse.release(digest);
    }
    return plan;
  }

  /** One import at a time: they share the journal that undoes an interrupted one (seed/import-journal.ts). */
  importBundle(source: string, onBytes: (n: number) => void = () => undefined): Promise<ImportSummary> {
    const run = (): Promise<ImportSummary> => importBundle(this.deps.importing, source, onBytes);
    const result = this.importing.then(run, run);
    this.importing = result.catch(() => undefined);
    return this.track(() => result);
  }

  /**
   * Resolves once the operations that write (deletes, seeds, imports) have ended, or after `timeoutMs`: the
   * index must not close under them. A seed or import whose client left goes on until then.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.allSettled([...this.running]), timeout]);
    clearTimeout(timer);
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    const running = work();
    this.running.add(running);
    const forget = (): void => void this.running.delete(running);
    running.then(forget, forget);
    return running;
  }
}

/** Offline, an image whose manifest a client read this recently may be mid-pull: its content stays. */
const ACTIVE_PULL_MS = 5 * 60_000;

/** References as given by a person or a request: each must parse (NAME_INVALID, TAG_INVALID, DIGEST_INVALID). */
function references(refs: readonly unknown[]): ImageReference[] {
  return refs.map((text) => {
    if (typeof text !== 'string') throw new RegistryError('BAD_REQUEST', 'an image reference must be a string');
    return parseImageReference(text);
  });
}

function tagReference(text: string): { ref: ImageReference; tag: Tag } {
  const [ref] = references([text]);
  if (!ref?.tag) throw new RegistryError('TAG_INVALID', `${ref?.canonical ?? text}: name a tag, not a digest`);
  return { ref, tag: ref.tag };
}

function notCached(ref: ImageReference): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `${ref.canonical} is not cached`, { detail: { ref: ref.canonical } });
}

function notServed(ref: ImageReference): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `${ref.registry} is not one of this mirror's registries (config "upstreams")`, { detail: { ref: ref.canonical } });
}
