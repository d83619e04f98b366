import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDevCa } from '../certs/dev-ca.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore } from '../store/store.ts';
import { dataDirWarning, ensurePrivateFile, writePrivateFile } from './private-files.ts';
import { loadSecretKey } from './secret-box.ts';

// Security property (issue 9, finding 8): every secret file in the data dir is 0600 even when
// the dir is 0755 (a packaged /var/lib/tunn) and the umask is 022, which made tunn.db and its
// -wal/-shm 0644 (readable by every local user) before.

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

describe('private files in an open data dir (0755, umask 022)', () => {
  let base: string;
  let umask: number;
  before(() => {
    umask = process.umask(0o022);
    base = mkdtempSync(join(tmpdir(), 'tunn-perm-'));
  });
  after(() => {
    process.umask(umask);
    rmSync(base, { recursive: true, force: true });
  });
  /** A data dir that already exists, open to everyone, as a package would create it. */
  const openDir = (name: string): string => {
    const d = join(base, name);
    mkdirSync(d);
    chmodSync(d, 0o755);
    assert.equal(mode(d), '755');
    return d;
  };

  it('creates tunn.db, -wal and -shm 0600', async () => {
    const d = openDir('db');
    const path = join(d, 'tunn.db');
    const store = await openStore(path);
    try {
      await ensureAccount(store, 'a@example.com');
      assert.ok(existsSync(path + '-wal') && existsSync(path + '-shm'), 'WAL mode keeps -wal and -shm while open');
      assert.equal(mode(path), '600');
      assert.equal(mode(path + '-wal'), '600');
      assert.equal(mode(path + '-shm'), '600');
    } finally {
      await store.close();
    }
  });

  it('tightens a database left 0644 by an earlier version', async () => {
    const d = openDir('old');
    const path = join(d, 'tunn.db');
    writeFileSync(path, '', { mode: 0o644 });
    writeFileSync(path + '-wal', '', { mode: 0o644 });
    const store = await openStore(path);
    await store.close();
    assert.equal(mode(path), '600');
  });

  it('creates the secret-box key file and the dev CA key 0600, and rewrites a loose dev CA key 0600', async () => {
    const d = openDir('keys');
    loadSecretKey(undefined, join(d, 'secret.key'));
    assert.equal(mode(join(d, 'secret.key')), '600');
    await ensureDevCa(d, "tunn.localhost");
    assert.equal(mode(join(d, 'dev-ca-key.pem')), '600');
    assert.equal(mode(join(d, 'dev-ca.pem')), '644', 'the CA certificate is public');
    // A key file someone loosened is tightened when it is next used.
    chmodSync(join(d, 'dev-ca-key.pem'), 0o644);
    chmodSync(join(d, 'secret.key'), 0o644);
    await ensureDevCa(d, "tunn.localhost");
    loadSecretKey(undefined, join(d, 'secret.key'));
    assert.equal(mode(join(d, 'dev-ca-key.pem')), '600');
    assert.equal(mode(join(d, 'secret.key')), '600');
  });

  it('writePrivateFile sets 0600 on a file that existed 0644 before writing, ensurePrivateFile creates 0600', () => {
    const d = openDir('w');
    writeFileSync(join(d, 'f'), 'old', { mode: 0o644 });
    writePrivateFile(join(d, 'f'), 'secret');
    assert.equal(mode(join(d, 'f')), '600');
    ensurePrivateFile(join(d, 'g'));
    assert.equal(mode(join(d, 'g')), '600');
    assert.throws(() => writePrivateFile(join(d, 'f'), 'x', { exclusive: true }), /EEXIST/);
  });

  // Security property: rewriting a secret file never goes through what is at its path. A
  // symlink planted there (by anyone who could write the dir, or left by a tool) used to be
  // followed: the secret was written into its target, or the target truncated. Now a new 0600
  // file replaces the name; the old file and any link target stay untouched.
  it('writePrivateFile replaces the name: a symlink at the path is not followed, a hard link keeps the old bytes', () => {
    const d = openDir('sym');
    const victim = join(d, 'operator-notes');
    writeFileSync(victim, 'keep me', { mode: 0o644 });
    const path = join(d, 'credentials.json');
    symlinkSync(victim, path);
    writePrivateFile(path, 'secret-1');
    assert.equal(readFileSync(victim, 'utf8'), 'keep me', 'the symlink target is untouched');
    assert.equal(mode(victim), '644');
    assert.ok(lstatSync(path).isFile(), 'the path is now a regular file, not the symlink');
    assert.equal(readFileSync(path, 'utf8'), 'secret-1');
    assert.equal(mode(path), '600');

    writePrivateFile(path, 'secret-2'); // replacing an existing regular file
    assert.equal(readFileSync(path, 'utf8'), 'secret-2');
    assert.equal(mode(path), '600');
    assert.deepEqual(readdirSync(d).sort(), ['credentials.json', 'operator-notes'], 'no temp file left behind');

    // A dangling symlink (pointing where a file could be created) is not followed either.
    const dangling = join(d, 'key');
    symlinkSync(join(d, 'elsewhere'), dangling);
    writePrivateFile(dangling, 'secret-3');
    assert.equal(existsSync(join(d, 'elsewhere')), false);
    assert.equal(readFileSync(dangling, 'utf8'), 'secret-3');
    // First-start files: an existing symlink counts as existing.
    symlinkSync(victim, join(d, 'ca.key'));
    assert.throws(() => writePrivateFile(join(d, 'ca.key'), 'x', { exclusive: true }), /EEXIST/);
    assert.equal(readFileSync(victim, 'utf8'), 'keep me');
  });

  it('writePrivateFile that cannot replace the name fails with the cause and leaves no temp file', () => {
    const d = openDir('fail');
    mkdirSync(join(d, 'taken'));
    writeFileSync(join(d, 'taken', 'x'), 'x'); // a non-empty directory cannot be renamed over
    assert.throws(() => writePrivateFile(join(d, 'taken'), 'new'), /EISDIR|ENOTEMPTY|EEXIST/);
    assert.deepEqual(readdirSync(d), ['taken']);
  });

  it('warns about a data dir open to other users, saying what to do', () => {
    const d = openDir('warn');
    assert.equal(dataDirWarning(d), `the data dir ${d} is open to other users (mode 0755); it holds the database and keys: run \`chmod 700 ${d}\``);
    chmodSync(d, 0o750);
    assert.match(dataDirWarning(d)!, /mode 0750/);
    chmodSync(d, 0o700);
    assert.equal(dataDirWarning(d), undefined);
  });
});
