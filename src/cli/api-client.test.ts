import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCredentials, removeCredentials, resolveApiTarget, saveCredentials } from './api-client.ts';
import { setUserSetting } from './user-config.ts';

// Security property: the saved credentials (a personal access token) are mode 0600 even when an
// older credentials.json was left 0644, and the token is never written while the file is loose.

describe('saved credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-creds-'));
  const before = process.env.TUNN_CONFIG_DIR;
  process.env.TUNN_CONFIG_DIR = dir;
  after(() => {
    if (before === undefined) delete process.env.TUNN_CONFIG_DIR;
    else process.env.TUNN_CONFIG_DIR = before;
    rmSync(dir, { recursive: true, force: true });
  });

  it('are written 0600 over a loose file, by login and by logout', () => {
    const umask = process.umask(0o022);
    try {
      writeFileSync(join(dir, 'credentials.json'), '{"relays":{}}\n', { mode: 0o644 });
      const p = saveCredentials('https://tunn.example.com', { token: 'secret-pat' });
      assert.equal((statSync(p).mode & 0o777).toString(8), '600');
      assert.equal(loadCredentials('https://tunn.example.com')?.token, 'secret-pat');
      // `tunn logout` rewrites the file with the other relays' tokens: 0600 as well, even if loosened.
      saveCredentials('https://other.example.com', { token: 'other-pat' });
      chmodSync(p, 0o644);
      removeCredentials('https://other.example.com');
      assert.equal((statSync(p).mode & 0o777).toString(8), '600');
      assert.equal(loadCredentials('https://tunn.example.com')?.token, 'secret-pat');
    } finally {
      process.umask(umask);
    }
  });

  it('keep --relay-ca absolute, so the saved sign-in works from any directory', () => {
    saveCredentials('https://dev.example.com', { token: 't', relayCa: 'relay-data/dev-ca.pem' });
    assert.equal(loadCredentials('https://dev.example.com')?.relayCa, join(process.cwd(), 'relay-data/dev-ca.pem'));
    saveCredentials('https://dev.example.com', { token: 't', relayCa: '/etc/tunn/ca.pem' });
    assert.equal(loadCredentials('https://dev.example.com')?.relayCa, '/etc/tunn/ca.pem');
  });

  it('the default relay and CA from `tunn config set` pick the saved sign-in; flags and env win', () => {
    saveCredentials('https://dev.example.com', { token: 'dev-token', relayCa: '/ca/dev.pem' });
    saveCredentials('https://tunn.example.com', { token: 'secret-pat' }); // the login default now
    setUserSetting('relay', 'https://dev.example.com');
    const t = resolveApiTarget({}, { TUNN_CONFIG_DIR: dir });
    assert.deepEqual(t, { relay: 'https://dev.example.com', token: 'dev-token', tokenFrom: 'login', relayCa: '/ca/dev.pem' });
    assert.equal(resolveApiTarget({}, { TUNN_CONFIG_DIR: dir, TUNN_RELAY: 'https://tunn.example.com' }).token, 'secret-pat');
    assert.equal(resolveApiTarget({ token: 'flag' }, { TUNN_CONFIG_DIR: dir }).tokenFrom, 'flags');
  });
});
