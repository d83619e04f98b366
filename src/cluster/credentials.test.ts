import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAll } from '../../test/support/read-all.ts';
import { isTunnError } from '../lib/errors.ts';
import { credentialsFromFiles, credentialsFromSecret } from './credentials.ts';
import { LinkClient } from './link-client.ts';
import { LinkServer } from './link-server.ts';

// Link credentials given as files (`--cluster-ca/-cert/-key`), made by the operator's own
// tools (here openssl), and the errors for files that cannot be used.

const dir = mkdtempSync(join(tmpdir(), 'tunn-cluster-pki-'));
const path = (name: string) => join(dir, name);

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and a leaf for `cn` issued by it, usable for both ends of a link. */
function makePki(prefix: string, leaves: string[]): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${prefix}-ca.key`, '-out', `${prefix}-ca.pem`, '-days', '2', '-subj', `/CN=${prefix} test cluster CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  writeFileSync(path('leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const cn of leaves) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${prefix}-${cn}.key`, '-out', `${prefix}-${cn}.csr`, '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', `${prefix}-${cn}.csr`, '-CA', `${prefix}-ca.pem`, '-CAkey', `${prefix}-ca.key`, '-CAcreateserial', '-out', `${prefix}-${cn}.pem`, '-days', '2', '-extfile', 'leaf.ext']);
  }
}

const files = (prefix: string, cn: string) => ({ ca: path(`${prefix}-ca.pem`), cert: path(`${prefix}-${cn}.pem`), key: path(`${prefix}-${cn}.key`) });

describe('cluster link credentials from files', () => {
  before(() => {
    makePki('ours', ['relay-a', 'relay-b']);
    makePki('theirs', ['relay-x']);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('carry a stream between two relays with certificates from one CA', async () => {
    const server = new LinkServer({ credentials: credentialsFromFiles(files('ours', 'relay-b')), onForwardedStream: (_h, _k, _c, stream, peer) => void readAll(stream).then((got) => stream.end(`${peer.nodeId}:${got}`)) });
    const url = `https://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
    const client = new LinkClient({ credentials: credentialsFromFiles(files('ours', 'relay-a')), timeoutMs: 5000 });
    try {
      // With files, the node id is not in the certificate: the chain to the CA is what is checked.
      const s = await client.open({ nodeId: 'nb', url }, { host: 'a.tunn.example.com', kind: 'tcp', client: '127.0.0.1:9' });
      s.end('hi');
      assert.equal(await readAll(s), 'relay-a:hi');
      // Security: a relay whose certificate comes from another CA is refused.
      const stranger = new LinkClient({ credentials: { ...credentialsFromFiles(files('theirs', 'relay-x')), ca: credentialsFromFiles(files('ours', 'relay-a')).ca }, timeoutMs: 5000 });
      await assert.rejects(stranger.open({ nodeId: 'nb', url }, { host: 'a.tunn.example.com', kind: 'tcp', client: '127.0.0.1:9' }), (e) => isTunnError(e, 'UNAVAILABLE') && /closed the connection before accepting it/.test(e.message));
      stranger.close();
    } finally {
      client.close();
      await server.close();
    }
  });

  it('files that cannot be used are named, with what to do', async () => {
    const ours = files('ours', 'relay-a');
    assert.throws(() => credentialsFromFiles({ ...ours, ca: path('missing.pem') }), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.startsWith(`reading --cluster-ca ${path('missing.pem')}: `) && /pass a readable PEM file/.test(e.message));
    assert.throws(() => credentialsFromFiles({ ...ours, key: ours.cert }), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message === `--cluster-key ${ours.cert} holds no PEM private key; pass the PEM file`);
    assert.throws(() => credentialsFromFiles({ ...ours, ca: files('theirs', 'relay-x').ca }), (e) => isTunnError(e, 'CONFIG_INVALID') && /--cluster-cert .* is not issued by --cluster-ca .*; issue every relay's certificate from the one cluster CA/.test(e.message));
  });

  it('a derived credential refuses a too-short secret', async () => {
    await assert.rejects(credentialsFromSecret('short', 'na'), TypeError);
  });
});
