import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { parseProxyV2 } from '../../src/lib/proxy-v2.ts';
import { startCluster, type TestCluster } from '../support/cluster.ts';
import { request, startCli, until, type Proc, type RelayHandle } from './harness.ts';

// Issue 14: every kind of `tunn tls` tunnel behaves through any relay exactly as on the relay
// its agent is on (A). Relays B and C learn the tunnel's kind from its lease (tls-private,
// tls-tcp, tls) and answer its visitors as A does:
//   - private (no --public): no SNI route; HTTPS to it is carried to A, which answers 426, and
//     `tunn connect` through C reaches the target;
//   - --backend tcp: B/C end TLS (the visitor verifies the relay's certificate) and carry the
//     plain bytes to A, which applies --allow-ip to the visitor's own address and gives the
//     target a PROXY v2 header with that address (not B's).
// Before, B/C routed both raw and A refused them (the visitor's connection was reset).

/** TLS to a relay for `servername`; resolves with what came back to `text` ('' when the connection ends without data). */
function tlsAsk(r: RelayHandle, servername: string, text: string): Promise<{ got: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: r.httpsPort, servername, ca: r.ca });
    let got = '';
    let localPort = 0;
    s.on('secureConnect', () => {
      localPort = s.localPort ?? 0;
      s.write(text);
    });
    s.on('data', (d: Buffer) => (got += d.toString()));
    // A relay that does not know the lease yet reads 'payload' as the start of an HTTP head and
    // waits for the rest: give up after 3 s so the caller polls again.
    s.setTimeout(3000, () => s.destroy());
    s.on('close', () => resolve({ got, localPort }));
    s.on('error', (err) => (got ? resolve({ got, localPort }) : reject(err)));
  });
}

describe('tls tunnels of every kind through any relay of a cluster (real processes, PostgreSQL)', () => {
  let cluster: TestCluster;
  let a: RelayHandle;
  let b: RelayHandle;
  let c: RelayHandle;
  let targetCa = '';
  let tlsTarget: tls.Server;
  let pp: net.Server;
  let ppConnections = 0;
  const procs: Proc[] = [];
  const portOf = (s: net.Server): number => (s.address() as AddressInfo).port;

  before(async () => {
    cluster = await startCluster({ relays: 3, prefix: 'tunn-e2e-cluster-kinds-' });
    [a, b, c] = cluster.relays as [RelayHandle, RelayHandle, RelayHandle];
    const ca = await createCa("the target's own CA");
    targetCa = ca.certPem;
    const leaf = await issueLeaf(ca, [`priv.${a.domain}`]);
    tlsTarget = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(`tls ends at the target (${s.servername}); you said ${d.toString()}`));
    });
    // A plain TCP target behind --proxy-protocol: answers with the source the PROXY v2 header names.
    pp = net.createServer((s) => {
      ppConnections++;
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const r = parseProxyV2(buf);
        if (!r || buf.length < r.length + 'payload'.length) return;
        const src = r.header.source;
        s.end(`from ${src?.address}:${src?.port} after the header: ${buf.subarray(r.length).toString()}`);
      });
    });
    for (const srv of [tlsTarget, pp]) {
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
    }
  });
  after(async () => {
    for (const p of procs) await p.kill();
    tlsTarget?.close();
    pp?.close();
    await cluster?.stop();
  });

  const startTls = async (args: string[]): Promise<string> => {
    const p = startCli(['tls', ...args, '--relay', a.url, '--relay-ca', a.caPath, '--token-file', await cluster.tokenFile('owner@example.com'), '--json']);
    procs.push(p);
    const ready = await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal', 30_000);
    assert.equal(ready.event, 'ready', JSON.stringify(ready));
    return String(ready.host);
  };

  it('a private tls tunnel on A: HTTPS through B and C answers 426 as A does, and tunn connect through C reaches it', async () => {
    const host = await startTls([String(portOf(tlsTarget)), '-n', 'priv', '-a', 'ann@example.com']);
    const get = (r: RelayHandle) => request(`https://${host}:${r.httpsPort}/`, { ca: r.ca, headers: { accept: 'text/plain' } });
    const atA = await get(a);
    assert.equal(atA.status, 426, atA.text);
    for (const r of [b, c]) {
      // B and C learn of the lease within their refresh (2 s) or at once from NOTIFY.
      await until(async () => (await get(r).catch(() => undefined))?.status === 426, 10_000, `${r.url} to answer 426 for the private tls tunnel held on A`);
      const res = await get(r);
      const page = (t: string) => t.replace(/request id <code>[^<]*<\/code>/, 'request id …');
      assert.equal(page(res.text), page(atA.text), 'the same answer as the holder (but its request id)');
    }
    assert.ok(!a.proc.lines.some((l) => l.event === 'cluster_link_refusal' && String(l.reason).includes(host)), 'A refused nothing B or C carried');

    const env = { TUNN_CONFIG_DIR: `${cluster.dir}/connect-cfg`, TUNN_RELAY: '', TUNN_TOKEN: '' };
    const annFile = await cluster.tokenFile('ann@example.com');
    const conn = startCli(['connect', host, '--listen', '0', '--json', '--relay', c.url, '--relay-ca', c.caPath, '--token-file', annFile], { env });
    procs.push(conn);
    const up = await conn.waitFor((l) => l.event === 'ready' || l.event === 'fatal', 30_000);
    assert.equal(up.event, 'ready', JSON.stringify(up));
    const port = Number(String(up.listen).split(':')[1]);
    const said = await new Promise<string>((resolve, reject) => {
      // The user's TLS ends at the target (its own CA): C and A only carry the bytes.
      const s = tls.connect({ host: '127.0.0.1', port, servername: host, ca: targetCa });
      let got = '';
      s.on('secureConnect', () => s.write('hello'));
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    assert.equal(said, `tls ends at the target (${host}); you said hello`);
  });

  // Security: TLS ends at the relay the visitor reached, and the holder still decides --allow-ip
  // on the visitor's own address, which is also what the target's PROXY v2 header says.
  it('a --backend tcp tunnel on A: through B and C the target gets plain bytes and the visitor\'s own address in its PROXY header', async () => {
    const host = await startTls([String(portOf(pp)), '-n', 'plain', '--public', '--backend', 'tcp', '--proxy-protocol', '--allow-ip', '127.0.0.0/8']);
    const atA = await tlsAsk(a, host, 'payload');
    assert.equal(atA.got, `from 127.0.0.1:${atA.localPort} after the header: payload`);
    for (const r of [b, c]) {
      await until(async () => (await tlsAsk(r, host, 'payload').catch(() => ({ got: '' }))).got.includes('after the header'), 10_000, `${r.url} to carry the --backend tcp tunnel held on A`);
      const v = await tlsAsk(r, host, 'payload');
      assert.equal(v.got, `from 127.0.0.1:${v.localPort} after the header: payload`, "the PROXY header names the visitor's own address and port, not the forwarding relay's");
    }
  });

  it('a --backend tcp tunnel on A with --allow-ip 10.0.0.0/8: a visitor on 127.0.0.1 through B is refused by A and reaches nothing', async () => {
    const host = await startTls([String(portOf(pp)), '-n', 'office', '--public', '--backend', 'tcp', '--proxy-protocol', '--allow-ip', '10.0.0.0/8']);
    const before = ppConnections;
    await until(async () => {
      await tlsAsk(b, host, 'payload').catch(() => undefined);
      return a.proc.lines.some((l) => l.event === 'cluster_link_refusal' && /not on the --allow-ip list/.test(String(l.reason)) && String(l.reason).includes(host));
    }, 15_000, 'A to refuse the visitor B carried, by --allow-ip');
    const v = await tlsAsk(b, host, 'payload').catch((err: Error) => ({ got: `error: ${err.message}`, localPort: 0 }));
    assert.ok(!v.got.includes('after the header'), v.got);
    assert.equal(ppConnections, before, 'no connection reached the target');
  });
});
