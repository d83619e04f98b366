import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { createCa, ensureDevCa, isConstrainedTo, issueLeaf, type KeyAndCert } from './dev-ca.ts';

/** A real TLS handshake (OpenSSL's chain and name-constraint checks) against a leaf from `ca`. */
async function verifies(ca: KeyAndCert, leafNames: string[], servername: string): Promise<string | undefined> {
  const leaf = await issueLeaf(ca, leafNames);
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    return await new Promise<string | undefined>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.certPem, rejectUnauthorized: false }, () => {
        resolve(s.authorized ? undefined : String(s.authorizationError));
        s.destroy();
      });
      s.on('error', (e) => resolve(e.message));
    });
  } finally {
    server.close();
  }
}

describe('dev CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-devca-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Security property: a dev CA that `tunn trust` installs system-wide can only vouch for the
  // dev domain, localhost and loopback addresses. A certificate it signs for any other name
  // (a bank, a mail provider) is refused by TLS clients, even if its key leaks.
  it('is name-constrained to the dev domain: its own names verify, any other name is refused', async () => {
    const ca = await ensureDevCa(dir, 'tunn.localhost');
    assert.equal(ca.replaced, undefined);
    assert.equal(isConstrainedTo(ca.certPem, 'tunn.localhost'), true);
    assert.equal(await verifies(ca, ['tunn.localhost', '*.tunn.localhost', 'localhost', '127.0.0.1', '::1'], 'app.tunn.localhost'), undefined);
    assert.equal(await verifies(ca, ['localhost'], 'localhost'), undefined);
    // Node reports OpenSSL's X509_V_ERR_PERMITTED_VIOLATION as UNSPECIFIED; `openssl verify` names it.
    assert.ok(await verifies(ca, ['www.example.com'], 'www.example.com'), 'a leaf for www.example.com is refused');
    assert.ok(await verifies(ca, ['tunn.localhost', 'mail.example.com'], 'tunn.localhost'), 'a leaf that also names mail.example.com is refused');
    const evil = await issueLeaf(ca, ['www.example.com']);
    writeFileSync(join(dir, 'evil.pem'), evil.certPem.slice(0, evil.certPem.indexOf('-----END CERTIFICATE-----') + 26));
    writeFileSync(join(dir, 'ca-only.pem'), ca.certPem);
    const r = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca-only.pem'), join(dir, 'evil.pem')], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /permitted subtree violation/);
    // openssl agrees, and shows it critical.
    const text = execFileSync('openssl', ['x509', '-noout', '-ext', 'nameConstraints'], { input: ca.certPem }).toString();
    assert.match(text, /Name Constraints: critical/);
    assert.match(text, /DNS:tunn\.localhost/);
    assert.match(text, /IP:127\.0\.0\.0\/255\.0\.0\.0/);
  });

  it('keeps a constrained CA; replaces an unconstrained one, or one for another domain, with a notice', async () => {
    const first = await ensureDevCa(dir, 'tunn.localhost');
    const again = await ensureDevCa(dir, 'tunn.localhost');
    assert.equal(again.certPem, first.certPem);
    const old = await createCa('tunn dev CA (local only)'); // as created before name constraints
    writeFileSync(join(dir, 'dev-ca.pem'), old.certPem);
    writeFileSync(join(dir, 'dev-ca-key.pem'), old.keyPem);
    const fresh = await ensureDevCa(dir, 'tunn.localhost');
    assert.notEqual(fresh.certPem, old.certPem);
    assert.equal(readFileSync(join(dir, 'dev-ca.pem'), 'utf8'), fresh.certPem);
    assert.match(fresh.replaced!, /could vouch for names beyond tunn\.localhost .*replaced by one limited to tunn\.localhost, localhost and loopback addresses.*`tunn untrust` and then `tunn trust`/);
    const other = await ensureDevCa(dir, 'dev.example.test');
    assert.ok(other.replaced);
    assert.equal(isConstrainedTo(other.certPem, 'dev.example.test'), true);
  });
});
