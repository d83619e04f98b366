import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
    await ensureDevCa(d);
    assert.equal(mode(join(d, 'dev-ca-key.pem')), '600');
    assert.equal(mode(join(d, 'dev-ca.pem')), '644', 'the CA certificate is public');
    // A key file someone loosened is tightened when it is next used.
    chmodSync(join(d, 'dev-ca-key.pem'), 0o644);
    chmodSync(join(d, 'secret.key'), 0o644);
    await ensureDevCa(d);
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

  it('warns about a data dir open to other users, saying what to do', () => {
    const d = openDir('warn');
    assert.equal(dataDirWarning(d), `the data dir ${d} is open to other users (mode 0755); it holds the database and keys: run \`chmod 700 ${d}\``);
    chmodSync(d, 0o750);
    assert.match(dataDirWarning(d)!, /mode 0750/);
    chmodSync(d, 0o700);
    assert.equal(dataDirWarning(d), undefined);
  });
});
