import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startRelay, tmpDir, type RelayHandle } from './harness.ts';

// Security property (issue 9, finding 8): a relay started on a data dir that already exists
// with mode 0755, under umask 022, keeps its database (with -wal/-shm) and keys 0600 and warns
// the operator, saying the command that fixes the directory.

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('relay data dir permissions', () => {
  const tmp = tmpDir('tunn-datadir-');
  let relay: RelayHandle | undefined;
  const umask = process.umask(0o022); // children inherit it
  after(async () => {
    await relay?.stop();
    process.umask(umask);
    tmp.remove();
  });

  it('creates every secret file 0600 in a 0755 dir and warns with chmod 700', async () => {
    const dataDir = join(tmp.path, 'var-lib-tunn');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o755);
    relay = await startRelay({ dataDir });
    const warning = relay.proc.lines.find((l) => l.event === 'data_dir_open');
    assert.ok(warning, `a data_dir_open warning; got ${JSON.stringify(relay.proc.lines)}`);
    assert.equal(warning.level, 40);
    assert.equal(warning.msg, `the data dir ${dataDir} is open to other users (mode 0755); it holds the database and keys: run \`chmod 700 ${dataDir}\``);
    for (const f of ['tunn.db', 'tunn.db-wal', 'tunn.db-shm', 'secret.key', 'dev-ca-key.pem']) {
      const p = join(dataDir, f);
      assert.ok(existsSync(p), `${f} exists while the relay runs`);
      assert.equal(mode(p).toString(8), '600', `${f} is private`);
    }
  });

  it('does not warn about a private data dir', async () => {
    await relay?.stop();
    const dataDir = join(tmp.path, 'private');
    mkdirSync(dataDir, { mode: 0o700 });
    relay = await startRelay({ dataDir });
    assert.equal(relay.proc.lines.find((l) => l.event === 'data_dir_open'), undefined);
  });
});
