import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCa, ensureDevCa } from '../certs/dev-ca.ts';
import { isTunnError } from '../lib/errors.ts';
import { browserDatabases, trust, untrust, type TrustPlan } from './trust.ts';

// `tunn trust` against a throwaway HOME (Chromium's ~/.pki/nssdb and a Firefox profile made with
// the real certutil) and a throwaway system store dir: never the machine's own stores.

const nicknames = (db: string): string[] =>
  execFileSync('certutil', ['-L', '-d', `sql:${db}`], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^(.*?)\s{2,}(\S*,\S*,\S*)\s*$/.exec(l))
    .filter((m) => m && m[1]!.trim() !== '' && m[1] !== 'Certificate Nickname')
    .map((m) => `${m![1]} ${m![2]}`);

describe('tunn trust / untrust', () => {
  const root = mkdtempSync(join(tmpdir(), 'tunn-trust-'));
  const home = join(root, 'home');
  const chromium = join(home, '.pki/nssdb');
  const firefox = join(home, '.mozilla/firefox/x1y2.default-release');
  const store = join(root, 'ca-certificates');
  let plan: TrustPlan;
  before(async () => {
    for (const db of [chromium, firefox]) {
      mkdirSync(db, { recursive: true });
      execFileSync('certutil', ['-N', '--empty-password', '-d', `sql:${db}`]);
    }
    mkdirSync(join(home, '.mozilla/firefox/no-db-here'), { recursive: true });
    mkdirSync(join(root, 'relay'));
    mkdirSync(join(root, 'relay2'));
    const ca = await ensureDevCa(join(root, 'relay'), 'tunn.localhost');
    plan = { caPath: ca.certPath, home, systemStore: store };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('finds the browsers\' NSS databases under HOME', () => {
    assert.deepEqual(browserDatabases(home), [chromium, firefox]);
  });

  it('installs the CA as a server-certificate CA in every store, replacing an earlier tunn CA', async () => {
    const r = trust(plan);
    const short = r.fingerprint.slice(0, 16);
    assert.equal(r.system, join(store, `tunn-dev-ca-${short}.crt`));
    assert.deepEqual(r.browsers, [chromium, firefox]);
    for (const db of [chromium, firefox]) assert.deepEqual(nicknames(db), [`tunn dev CA ${short} C,,`]);
    // A new dev CA (another data dir): trusting it removes the old one from the stores.
    const next = await ensureDevCa(join(root, 'relay2'), 'tunn.localhost');
    const r2 = trust({ ...plan, caPath: next.certPath });
    assert.notEqual(r2.fingerprint, r.fingerprint);
    assert.deepEqual(readdirSync(store), [`tunn-dev-ca-${r2.fingerprint.slice(0, 16)}.crt`]);
    assert.deepEqual(nicknames(chromium), [`tunn dev CA ${r2.fingerprint.slice(0, 16)} C,,`]);
  });

  it('untrust removes every tunn CA and leaves other certificates alone', () => {
    const other = join(root, 'other.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(root, 'k.pem'), '-out', other, '-subj', '/CN=someone else', '-days', '1'], { stdio: 'ignore' });
    execFileSync('certutil', ['-A', '-d', `sql:${chromium}`, '-t', 'C,,', '-n', 'someone else', '-i', other]);
    writeFileSync(join(store, 'corp-root.crt'), 'x');
    const r = untrust(plan);
    assert.equal(r.system.length, 1);
    assert.deepEqual(r.browsers, [chromium, firefox]);
    assert.deepEqual(nicknames(chromium), ['someone else C,,']);
    assert.deepEqual(nicknames(firefox), []);
    assert.deepEqual(readdirSync(store), ['corp-root.crt']);
    assert.deepEqual(untrust(plan), { system: [], browsers: [] });
  });

  // Security property: a CA trusted system-wide that can vouch for any name is a weapon; only a
  // name-constrained dev CA is installed.
  it('refuses an old dev CA without name constraints, saying how to replace it', async () => {
    const old = await createCa('tunn dev CA (local only)');
    const p = join(root, 'old-ca.pem');
    writeFileSync(p, old.certPem);
    assert.throws(() => trust({ ...plan, caPath: p }), (e) => isTunnError(e, 'FORBIDDEN') && e.message === `${p} is an old dev CA that could vouch for any name, so it is not trusted: start \`tunn dev\` (or \`tunn relay --dev\`) once to replace it with one limited to the dev domain, then run \`tunn trust\` again`);
    assert.equal(existsSync(store) && readdirSync(store).some((f) => f.startsWith('tunn-')), false);
  });

  it('says what to do without a CA, without certutil, or with a store it cannot write', () => {
    assert.throws(() => trust({ ...plan, caPath: join(root, 'nope/dev-ca.pem') }), (e) => isTunnError(e, 'NOT_FOUND') && /no dev CA at .*: start `tunn dev` \(or `tunn relay --dev`\) once to create it, or pass the data dir it runs with \(--data-dir DIR\)/.test(e.message));
    assert.throws(() => trust({ ...plan, systemStore: false, certutil: join(root, 'no-certutil') }), (e) => isTunnError(e, 'UNAVAILABLE') && /is missing, so browsers cannot be told: install libnss3-tools \(Debian, Ubuntu\) or nss-tools \(Fedora\), or pass --no-browsers/.test(e.message));
    writeFileSync(join(root, 'a-file'), '');
    assert.throws(() => trust({ ...plan, systemStore: join(root, 'a-file/sub') }), (e) => isTunnError(e, 'UNAVAILABLE') && /cannot change the system trust store/.test(e.message));
  });
});
