// Owns: the htpasswd file of client authentication (issue 14): bcrypt lines as `htpasswd -B` writes them, parsed
// once per change of the file, and password checks against them.
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';

/** `$2y$` (Apache's htpasswd -B), `$2b$` and `$2a$` (other tools): all bcrypt, all checked by bcryptjs. */
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
/** How often, at most, a request stats the file: a reload is noticed within a second, at one stat a second. */
const RECHECK_MS = 1000;
/**
 * Compared against when the user is unknown, so that an unknown user costs the same time as a wrong password
 * and response times do not tell which user names exist. (A real bcrypt hash, cost 10, of a password nobody sends.)
 */
const DUMMY_HASH = '$2b$10$MStcQpeJDQGHxtpIgEkfPeSKHOP2IJAD/Jj1lgVedx57JcEkuA6la';

export interface ParsedHtpasswd {
  users: Map<string, string>;
  /** 1-based numbers of lines that are no `user:bcrypt` line (MD5, SHA1, crypt or garbage): those users cannot log in. */
  rejected: number[];
}

/** Blank lines and `#` comments are skipped; a user named twice keeps the first line, as Apache's tools read it. */
export function parseHtpasswd(text: string): ParsedHtpasswd {
  const users = new Map<string, string>();
  const rejected: number[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !BCRYPT.test(hash)) {
      rejected.push(i + 1);
      return;
    }
    if (!users.has(user)) users.set(user, hash);
  });
  return { users, rejected };
}

/** What tells a changed file: a password change keeps the size, and an editor's save-by-rename changes the inode. */
interface Version {
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  ino: number;
}

/**
 * The users of one htpasswd file. Reloaded when its mtime, ctime, size or inode changes, checked on use at most once a
 * second (no watcher to leak or to miss an editor's rename); a file that cannot be read or parsed after a change
 * keeps the users last loaded, so a half-written edit never locks everyone out.
 */
export class Htpasswd {
  private users = new Map<string, string>();
  private version: Version | undefined;
  private checkedAt = -Infinity;
  private reloading: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Reads the file now: a missing or unreadable file fails the start. */
  static async open(path: string, log: Logger, now: () => number = Date.now): Promise<Htpasswd> {
    const file = new Htpasswd(path, log, now);
    await file.load();
    file.checkedAt = now();
    return file;
  }

  /** The bcrypt hash of `user`, from the file as it is now (within a second); undefined for an unknown user. */
  async hashOf(user: string): Promise<string | undefined> {
    await this.refresh();
    return this.users.get(user);
  }

  /**
   * Whether `password` is `user`'s, and the hash it matched (so a cache of this answer can tell when the file
   * changed the user's password). Costs one bcrypt, even for an unknown user.
   */
  async verify(user: string, password: string): Promise<string | undefined> {
    const hash = await this.hashOf(user);
    const ok = await bcrypt.compare(password, hash ?? DUMMY_HASH);
    return ok && hash !== undefined ? hash : undefined;
  }

  private async refresh(): Promise<void> {
    const now = this.now();
    if (now - this.checkedAt < RECHECK_MS) return this.reloading;
    this.checkedAt = now;
    this.reloading = this.load().catch((err: unknown) => {
      this.log.warn({ err, path: this.path }, 'htpasswd not reloaded; keeping the users loaded before');
    });
    return this.reloading;
  }

  private async load(): Promise<void> {
    const info = await stat(this.path);
    const version: Version = { mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, size: info.size, ino: info.ino };
    const last = this.version;
    if (last && (Object.keys(version) as Array<keyof Version>).every((k) => last[k] === version[k])) return;
    const { users, rejected } = parseHtpasswd(await readFile(this.path, 'utf8'));
    if (rejected.length > 0) {
      this.log.warn({ path: this.path, lines: rejected }, 'htpasswd lines that are not bcrypt (htpasswd -B) are ignored');
    }
    this.users = users;
    this.version = version;
    this.log.info({ path: this.path, users: users.size }, 'htpasswd loaded');
  }
}
