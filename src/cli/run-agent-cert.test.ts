import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { AgentCertStore } from '../agent/tls/cert-store.ts';
import { spkiPin } from '../agent/tls/pin.ts';
import { leaf, testCa } from '../agent/tls/testing.ts';
import { certInfo } from '../certs/issuer.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { agentTlsDir, runCertCaa, runCertLocal, runCertPin } from './run-agent-cert.ts';

const CLI = resolve(import.meta.dirname, '../../bin/tunn.js');
const NAME = 'grafana.tunn.example.test';
const ARI_NAME = 'ari.tunn.example.test';
const ARI_AT = Date.UTC(2027, 0, 10, 6, 30);
const LE = 'https://acme-v02.api.letsencrypt.org/directory';
const ACCOUNT = 'https://acme-v02.api.letsencrypt.org/acme/acct/987654';

describe('tunn cert caa | pin | local (the agent’s own state)', () => {
  let config: string;
  let chainPem: string;
  before(async () => {
    config = mkdtempSync(join(tmpdir(), 'tunn-cert-cmds-'));
    const store = new AgentCertStore(agentTlsDir({ TUNN_CONFIG_DIR: config }), new SecretBox(randomBytes(32)));
    const l = await leaf(await testCa(), [NAME]);
    chainPem = l.chainPem;
    const info = certInfo(l.chainPem);
    store.save({ name: NAME, chainPem: l.chainPem, keyPem: l.keyPem, issuer: `acme:${LE}`, notBefore: info.notBefore, notAfter: info.notAfter });
    // One whose CA suggested a renewal window (ARI): the agent renews at the time it picked in it.
    const a = await leaf(await testCa(), [ARI_NAME]);
    const ai = certInfo(a.chainPem);
    store.save({ name: ARI_NAME, chainPem: a.chainPem, keyPem: a.keyPem, issuer: `acme:${LE}`, notBefore: ai.notBefore, notAfter: ai.notAfter, renewal: { at: ARI_AT, source: 'ari', window: { start: ARI_AT - 3_600_000, end: ARI_AT + 3_600_000 }, checkAgainAt: ARI_AT - 7_200_000 } });
    await store.accountKey(LE, undefined, async () => 'not-a-real-key');
    store.recordAccountUrl(LE, ACCOUNT);
  });
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'cert', ...args], { env: { ...process.env, TUNN_CONFIG_DIR: config }, encoding: 'utf8' });

  it('prints the CAA issue record with the agent’s account URL, one line; --json too', () => {
    const r = run('caa', NAME);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${NAME}. CAA 0 issue "letsencrypt.org; accounturi=${ACCOUNT}"\n`);
    const j = JSON.parse(run('caa', NAME, '--json').stdout);
    assert.equal(j.event, 'caa');
    assert.equal(j.accountUri, ACCOUNT);
    assert.equal(run('caa', NAME, '--custom-domain', 'tunn.example.test').stdout.split('\n')[1], 'tunn.example.test. CAA 0 issuewild ";"');
  });

  it('prints the SPKI pin of the served key, the form curl --pinnedpubkey takes', () => {
    const r = run('pin', NAME);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `sha256//${spkiPin(chainPem)}\n`);
    assert.equal(JSON.parse(run('pin', NAME, '--json').stdout).pin, `sha256//${spkiPin(chainPem)}`);
  });

  it('says what to do for a name it holds nothing for, and when it has no account', () => {
    const r = run('pin', 'other.example.test');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /holds no certificate for other\.example\.test: start the tunnel with `tunn <port> -n <name> --terminate-at agent` first/);
    const lines: string[] = [];
    assert.throws(() => runCertCaa(NAME, {}, new AgentCertStore(join(config, 'empty'))), /no ACME account yet/);
    assert.throws(() => runCertPin(NAME, {}, new AgentCertStore(join(config, 'empty'))), /holds no certificate/);
    runCertLocal({}, new AgentCertStore(join(config, 'empty')), (s) => lines.push(s));
    assert.match(lines.join(''), /holds no certificates/);
  });

  it('lists what the agent holds: name, where TLS ends, issuer, expiry, when it renews and why then, pin', () => {
    const r = run('local');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${NAME.replaceAll('.', '\\.')}\\s+agent\\s+acme:${LE.replaceAll('.', '\\.')}.* \\(2/3 of lifetime\\)`));
    assert.match(r.stdout, new RegExp(`${ARI_NAME.replaceAll('.', '\\.')}\\s+agent\\s+.* ${new Date(ARI_AT).toISOString().replaceAll('.', '\\.')} \\(ARI\\)`));
    assert.ok(r.stdout.includes(`sha256//${spkiPin(chainPem)}`));
    const j = JSON.parse(run('local', '--json').stdout) as { certs: { name: string; renewAt: string; renewedBy: string; ariWindow?: { start: string } }[] };
    const ari = j.certs.find((c) => c.name === ARI_NAME)!;
    assert.deepEqual([ari.renewAt, ari.renewedBy, ari.ariWindow?.start], [new Date(ARI_AT).toISOString(), 'ari', new Date(ARI_AT - 3_600_000).toISOString()]);
    assert.equal(j.certs.find((c) => c.name === NAME)!.renewedBy, 'lifetime');
  });
});
