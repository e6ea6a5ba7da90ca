// The htpasswd file of client authentication (issue 14): which lines count, bcrypt checks of every prefix
// htpasswd tools write, and reloading when the file changes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Htpasswd, parseHtpasswd } from '../../src/http/htpasswd.js';

const log = pino({ level: 'silent' });
/** Cost 4: the lowest bcrypt allows, so tests do not spend seconds hashing. */
const line = (user: string, password: string, prefix = '$2y$') => `${user}:${prefix}${bcrypt.hashSync(password, 4).slice(4)}`;

describe('parseHtpasswd', () => {
  it('takes bcrypt lines, skips comments and blank lines, and reports lines that are not bcrypt', () => {
    const text = [
      '# users of the mirror',
      line('alice', 'a'),
      '',
      'bob:$apr1$abcdefgh$0123456789abcdefghijkl', // htpasswd -m (MD5): not accepted
      'carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=',
      'no-colon-line',
      line('dave', 'd', '$2b$'),
      `${line('alice', 'second')}`,
    ].join('\n');
    const { users, rejected } = parseHtpasswd(text);
    expect([...users.keys()]).toEqual(['alice', 'dave']);
    expect(rejected).toEqual([4, 5, 6]);
  });
});

describe('Htpasswd', () => {
  let dir: string;
  let path: string;
  let clock: number;
  const now = () => clock;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regmirror-htpasswd-'));
    path = join(dir, 'htpasswd');
    clock = 1_000_000;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('verifies $2y$ (htpasswd -B), $2b$ and $2a$ lines, and refuses a wrong password or an unknown user', async () => {
    await writeFile(path, [line('y', 'py', '$2y$'), line('b', 'pb', '$2b$'), line('a', 'pa', '$2a$')].join('\n'));
    const file = await Htpasswd.open(path, log, now);
    for (const user of ['y', 'b', 'a']) {
      expect(await file.verify(user, `p${user}`), user).toMatch(/^\$2[aby]\$/);
      expect(await file.verify(user, 'wrong'), user).toBeUndefined();
    }
    expect(await file.verify('nobody', 'py')).toBeUndefined();
  });

  it('fails to open a missing file, so a mirror meant to be private never starts open', async () => {
    await expect(Htpasswd.open(join(dir, 'missing'), log, now)).rejects.toThrow(/ENOENT/);
  });

  it('reloads a changed file at the next check (a second later), and not before', async () => {
    await writeFile(path, `${line('alice', 'old')}\n`);
    const file = await Htpasswd.open(path, log, now);
    await writeFile(path, `${line('alice', 'new')}\n${line('bob', 'b')}\n`);
    // Within the second: the file is not even stat'ed again.
    expect(await file.verify('alice', 'old')).toBeDefined();
    clock += 1000;
    expect(await file.verify('alice', 'new')).toBeDefined();
    expect(await file.verify('alice', 'old')).toBeUndefined();
    expect(await file.verify('bob', 'b')).toBeDefined();
  });

  it('notices a password changed in place (same size) and a user removed', async () => {
    await writeFile(path, `${line('alice', 'one')}\n${line('bob', 'b')}\n`);
    const file = await Htpasswd.open(path, log, now);
    await writeFile(path, `${line('alice', 'two')}\n`);
    clock += 1000;
    expect(await file.hashOf('bob')).toBeUndefined();
    expect(await file.verify('alice', 'two')).toBeDefined();
  });

  it('keeps the users loaded before when the file disappears', async () => {
    await writeFile(path, `${line('alice', 'a')}\n`);
    const file = await Htpasswd.open(path, log, now);
    await rm(path);
    clock += 1000;
    expect(await file.verify('alice', 'a')).toBeDefined();
  });
});
