import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { relayOptionsFrom } from '../cli/run-relay.ts';
import { isTunnError } from '../lib/errors.ts';

// The cluster flags of `tunn relay`: each mistake is named with what to do, together with every
// other problem; and until phase 2 wires the relay into a cluster, asking for one is refused
// plainly rather than ignored.

const dir = mkdtempSync(join(tmpdir(), 'tunn-cluster-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
};
const PG = 'postgres://tunn:pw@db.example.com/tunn';
const SECRET = '0123456789abcdef0123456789abcdef0123456789abcdef';

/** The problems `tunn relay` reports for these flags and environment. */
function problems(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    relayOptionsFrom({ domain: 'tunn.example.com', dataDir: dir, ...flags }, env);
  } catch (err) {
    assert.ok(isTunnError(err, 'CONFIG_INVALID'), String(err));
    return err.message.split('\n  - ').slice(1);
  }
  return [];
}


describe('cluster settings', () => {
  it('a single relay is unaffected', () => {
    assert.deepEqual(problems({}), []);
  });

  it('--node-url without a postgres:// store or credentials says what it needs', () => {
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443' }), [
      '--node-url needs --store postgres://… (the relays of a cluster share one PostgreSQL database; pass its URL with --store-file FILE or TUNN_STORE)',
      '--node-url needs the credentials of the link between relays: --cluster-secret-file FILE (the same secret on every relay; env TUNN_CLUSTER_SECRET), or --cluster-ca, --cluster-cert and --cluster-key',
    ]);
    assert.match(problems({ nodeUrl: 'https://10.0.0.11:7443', store: join(dir, 'tunn.db'), clusterSecretFile: file('s1', SECRET) })[0]!, /^--node-url needs --store postgres:\/\//);
  });

  it('--node-url must be https://host:port', () => {
    for (const bad of ['http://10.0.0.11:7443', 'https://10.0.0.11', 'https://10.0.0.11:7443/x', 'https://u:p@10.0.0.11:7443', 'not a url']) {
      assert.ok(problems({ nodeUrl: bad, store: PG, clusterSecretFile: file('s2', SECRET) }).includes('--node-url: must be https://host:port, the address the other relays reach this one at, e.g. https://10.0.0.11:7443'), bad);
    }
  });

  it('the cluster secret comes from a file or the environment, is long enough, and is never echoed', () => {
    const short = 'too-short-secret';
    const p = problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG }, { TUNN_CLUSTER_SECRET: short });
    assert.ok(p.includes('--cluster-secret: must be at least 32 characters; generate one with: openssl rand -hex 32'), p.join('\n'));
    assert.ok(!p.join('\n').includes(short));
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG }, { TUNN_CLUSTER_SECRET_FILE: file('s3', SECRET + '\n') }), []);
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG, clusterSecretFile: file('s4', SECRET) }), []);
  });

  it('certificate files come as a set, not with a secret, and must exist; cluster settings need --node-url', () => {
    const ca = file('ca.pem', 'x');
    const cert = file('cert.pem', 'x');
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG, clusterCa: ca, clusterCert: cert }), ["--cluster-ca and --cluster-cert need --cluster-key (the cluster CA, this relay's certificate from it, and its key)"]);
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG, clusterCa: ca, clusterCert: cert, clusterKey: join(dir, 'nope.pem') }), [`cannot read --cluster-key ${join(dir, 'nope.pem')}: no such file`]);
    assert.deepEqual(problems({ nodeUrl: 'https://10.0.0.11:7443', store: PG, clusterCa: ca, clusterSecretFile: file('s5', SECRET) }), ['give either --cluster-secret-file or --cluster-ca/--cluster-cert/--cluster-key, not both']);
    assert.deepEqual(problems({ clusterSecretFile: file('s6', SECRET) }), ['--cluster-secret-file needs --node-url (the https://host:port at which the other relays reach this one)']);
  });
});
