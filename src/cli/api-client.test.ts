import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCredentials, removeCredentials, saveCredentials } from './api-client.ts';

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
});
