import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { leaf, testCa } from '../agent/tls/testing.ts';
import { spkiPin } from '../agent/tls/pin.ts';
import { agentTlsProblems, agentTlsSettings, testRetryMs } from './agent-tls-flags.ts';

const CLI = resolve(import.meta.dirname, '../../bin/tunn.js');

describe('--terminate-at agent and its flags', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let otherKey: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tunn-tls-flags-'));
    const ca = await testCa();
    const a = await leaf(ca, ['app.example.test']);
    const b = await leaf(ca, ['app.example.test']);
    writeFileSync((cert = join(dir, 'cert.pem')), a.chainPem);
    writeFileSync((key = join(dir, 'key.pem')), a.keyPem);
    writeFileSync((otherKey = join(dir, 'other-key.pem')), b.keyPem);
  });

  // Guards the CA and the relay's DNS-01 budget: a mistyped test retry period must not become a
  // timer firing every millisecond (Number('abc') is NaN, Number('0') is 0).
  it('takes TUNN_TEST_AGENT_TLS_RETRY_MS only as a whole number of at least 100 ms', () => {
    assert.equal(testRetryMs('1500'), 1500);
    assert.equal(testRetryMs('100'), 100);
    for (const bad of [undefined, '', ' ', 'abc', '0', '1', '99', '-1500', '1.5e3', '150.5', 'NaN', 'Infinity', '0x600', '1e400']) assert.equal(testRetryMs(bad), undefined, `${String(bad)} is ignored`);
  });

  it('names every flag that needs --terminate-at agent, a missing partner and a missing file, all at once', () => {
    const p = agentTlsProblems({ fallback: false, keepKey: true, tlsCert: join(dir, 'nope.pem'), clientCa: join(dir, 'ca-nope.pem') });
    assert.ok(p.includes('--no-fallback only applies with --terminate-at agent (TLS ends at the relay otherwise, and the relay holds the certificate)'));
    assert.ok(p.some((l) => l.startsWith('--keep-key only applies')));
    assert.ok(p.includes('--tls-cert needs --tls-key (the private key of the certificate)'));
    assert.ok(p.includes(`cannot read --tls-cert ${join(dir, 'nope.pem')}: no such file`));
    assert.ok(p.includes(`cannot read --client-ca ${join(dir, 'ca-nope.pem')}: no such file`));
    assert.deepEqual(agentTlsProblems({ terminateAt: 'agent', tlsCert: cert, tlsKey: key }), []);
    assert.match(agentTlsProblems({ terminateAt: 'agent', tlsCert: cert, tlsKey: key, keepKey: true }).join('\n'), /--tls-cert serves your own certificate/);
  });

  it('reads --tls-cert/--tls-key and refuses a key that is not the certificate’s', () => {
    const s = agentTlsSettings({ terminateAt: 'agent', tlsCert: cert, tlsKey: key });
    assert.equal(s.files?.pin, spkiPin(s.files!.chainPem));
    assert.throws(() => agentTlsSettings({ terminateAt: 'agent', tlsCert: cert, tlsKey: otherKey }), /do not go together .*give the certificate chain and the private key it was issued for/);
    assert.throws(() => agentTlsSettings({ terminateAt: 'agent', clientCa: key }), /--client-ca holds no PEM certificate/);
    assert.deepEqual(agentTlsSettings({}), { terminateAt: 'relay', fallback: true, keepKey: false });
  });

  // Security property: --client-ca cannot be enforced by the relay, so it never falls back for such a tunnel.
  it('--client-ca implies --no-fallback', () => {
    assert.equal(agentTlsSettings({ terminateAt: 'agent', tlsCert: cert, tlsKey: key }).fallback, true);
    assert.equal(agentTlsSettings({ terminateAt: 'agent', tlsCert: cert, tlsKey: key, clientCa: cert }).fallback, false);
  });

  it('through the CLI: a bad value is refused with the flag named', () => {
    const env = { ...process.env, TUNN_CONFIG_DIR: dir, TUNN_RELAY: 'https://relay.example.test', TUNN_TOKEN: 'x' };
    const bad = spawnSync(process.execPath, [CLI, '8080', '--terminate-at', 'edge'], { env, encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--terminate-at.*'edge' is invalid.*agent, relay/);
    const lone = spawnSync(process.execPath, [CLI, '8080', '--keep-key', '--no-inspect'], { env, encoding: 'utf8' });
    assert.equal(lone.status, 1);
    assert.match(lone.stderr, /--keep-key only applies with --terminate-at agent/);
  });
});
