import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import { leaf, testCa } from '../../src/agent/tls/testing.ts';
import { createCa, issueLeaf, type KeyAndCert } from '../../src/certs/dev-ca.ts';
import { startCluster, type TestCluster } from '../support/cluster.ts';
import { proxyV2Target } from '../support/proxy-v2-target.ts';
import { readyOf, request, startCli, until, type Proc, type RelayHandle } from './harness.ts';

// Issue 14: every kind of `tunn tls` tunnel behaves through any relay exactly as on the relay
// its agent is on (A). Relays B and C learn the tunnel's kind from its lease (tls-private,
// tls-tcp, tls) and answer its visitors as A does:
//   - private (no --public): no SNI route; HTTPS to it is carried to A, which answers 426, and
//     `tunn connect` through C reaches the target;
//   - --backend tcp: B/C end TLS (the visitor verifies the relay's certificate) and carry the
//     plain bytes to A, which applies --allow-ip to the visitor's own address and gives the
//     target a PROXY v2 header with that address (not B's).
// Before, B/C routed both raw and A refused them (the visitor's connection was reset).
// `tunn tls --backend tcp --terminate-at agent` (its TLS ends at the agent, which sends plain TCP
// to the target) through B as on A: public and ready, B routes the SNI raw to A (lease
// tls-tcp-at-agent) and `tunn connect` through B reaches it (before, that lease read as an http
// tunnel's tls-at-agent, and B answered tunn connect "not found"); during fallback B ends TLS as A
// does (lease tls-tcp); with --no-fallback B hands the handshake to the agent as A does; private,
// B never routes its SNI to the agent, and only `tunn connect` through B reaches it.

/**
 * TLS to a relay's HTTPS port (or `port`) for `servername`, trusting `ca` (the relay's by default);
 * resolves with what came back to `text` ('' when the connection ends without data) and the pin of
 * the certificate the handshake verified.
 */
function tlsAsk(r: RelayHandle, servername: string, text: string, o: { ca?: string; port?: number; insecure?: boolean } = {}): Promise<{ got: string; localPort: number; pin: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: o.port ?? r.httpsPort, servername, ca: o.ca ?? r.ca, rejectUnauthorized: !o.insecure });
    let got = '';
    let localPort = 0;
    let pin = '';
    s.on('secureConnect', () => {
      localPort = s.localPort ?? 0;
      pin = spkiPin(s.getPeerX509Certificate()!.toString());
      s.write(text);
    });
    s.on('data', (d: Buffer) => (got += d.toString()));
    // A relay that does not know the lease yet reads 'payload' as the start of an HTTP head and
    // waits for the rest: give up after 3 s so the caller polls again.
    s.setTimeout(3000, () => s.destroy());
    s.on('close', () => resolve({ got, localPort, pin }));
    s.on('error', (err) => (got ? resolve({ got, localPort, pin }) : reject(err)));
  });
}

describe('tls tunnels of every kind through any relay of a cluster (real processes, PostgreSQL)', () => {
  let cluster: TestCluster;
  let a: RelayHandle;
  let b: RelayHandle;
  let c: RelayHandle;
  let targetCa = '';
  /** The CA of the agents' own certificates (--tls-cert). */
  let agentCa: KeyAndCert;
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
    agentCa = await testCa();
    const leaf = await issueLeaf(ca, [`priv.${a.domain}`]);
    tlsTarget = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(`tls ends at the target (${s.servername}); you said ${d.toString()}`));
    });
    // A plain TCP target behind --proxy-protocol: answers with the source the PROXY v2 header names.
    pp = proxyV2Target('payload'.length, (s, r, payload) => {
      const src = r.header.source;
      s.end(`from ${src?.address}:${src?.port} after the header: ${payload.toString()}`);
    });
    pp.on('connection', () => ppConnections++);
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

  /** Starts `tunn tls <args>` with its agent on A; resolves once it is ready. */
  const startTunnel = async (args: string[]): Promise<{ host: string; agent: Proc }> => {
    const agent = startCli(['tls', ...args, '--relay', a.url, '--relay-ca', a.caPath, '--token-file', await cluster.tokenFile('owner@example.com'), '--json'], { env: { TUNN_CONFIG_DIR: `${cluster.dir}/agent-cfg-${procs.length}`, TUNN_RELAY: '', TUNN_TOKEN: '' } });
    procs.push(agent);
    const ready = await readyOf(agent);
    return { host: String(ready.host), agent };
  };
  const startTls = async (args: string[]): Promise<string> => (await startTunnel(args)).host;

  /** `tunn connect host` through relay `r` as `email`; resolves with its local port once ready. */
  const connectVia = async (r: RelayHandle, host: string, email: string): Promise<number> => {
    const env = { TUNN_CONFIG_DIR: `${cluster.dir}/connect-cfg-${procs.length}`, TUNN_RELAY: '', TUNN_TOKEN: '' };
    const conn = startCli(['connect', host, '--listen', '0', '--json', '--relay', r.url, '--relay-ca', r.caPath, '--token-file', await cluster.tokenFile(email)], { env });
    procs.push(conn);
    const up = await readyOf(conn);
    return Number(String(up.listen).split(':')[1]);
  };

  /** `--tls-cert`/`--tls-key` files for `names`, from the agents' CA. */
  const agentCert = async (label: string, names: string[]): Promise<string[]> => {
    const l = await leaf(agentCa, names);
    writeFileSync(`${cluster.dir}/${label}.pem`, l.chainPem);
    writeFileSync(`${cluster.dir}/${label}.key`, l.keyPem, { mode: 0o600 });
    return ['--tls-cert', `${cluster.dir}/${label}.pem`, '--tls-key', `${cluster.dir}/${label}.key`];
  };

  /** `tunn tls <pp> -n name --backend tcp --terminate-at agent --proxy-protocol <extra>` on A, with --tls-cert for `certFor` (none: null). */
  const startAtAgent = async (name: string, extra: string[], certFor: string | null = `${name}.${a.domain}`) =>
    startTunnel([String(portOf(pp)), '-n', name, '--backend', 'tcp', '--terminate-at', 'agent', '--proxy-protocol', ...extra, ...(certFor ? await agentCert(name, [certFor]) : [])]);

  /** The agent's `tls` event once TLS ends there, after A logged that it routes so. */
  const endsAtAgent = async (agent: Proc, host: string): Promise<Record<string, unknown>> => {
    const ev = await agent.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 30_000);
    await a.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === host, 30_000);
    return ev;
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

    const port = await connectVia(c, host, 'ann@example.com');
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
    // B closed the refused visitor's socket (TLS ended there) without ending itself (once ERR_INVALID_HANDLE_TYPE did).
    const alive = await request(`http://127.0.0.1:${b.httpPort}/`, { headers: { Host: b.domain } }).then((r) => r.status, (err: Error) => err.message);
    assert.equal(typeof alive, 'number', `B is still up (${alive})`);
  });
  const headerFrom = (v: { localPort: number }) => `from 127.0.0.1:${v.localPort} after the header: payload`;

  it('a public --terminate-at agent tunnel on A, ready: through B the visitor sees the agent’s pin, the target plain bytes after a PROXY header naming the visitor; tunn connect through B reaches it as on A', async () => {
    const { host, agent } = await startAtAgent('edge', ['--public', '--allow-ip', '127.0.0.0/8']);
    const ev = await endsAtAgent(agent, host);
    const atA = await tlsAsk(a, host, 'payload', { ca: agentCa.certPem });
    assert.deepEqual([atA.got, atA.pin], [headerFrom(atA), ev.pin]);
    await until(async () => (await tlsAsk(b, host, 'payload', { ca: agentCa.certPem }).catch(() => ({ got: '' }))).got.includes('after the header'), 10_000, `${b.url} to route the SNI of the agent-terminated tunnel held on A`);
    const v = await tlsAsk(b, host, 'payload', { ca: agentCa.certPem });
    assert.equal(v.pin, ev.pin, "B never ended the visitor's TLS: the certificate is the agent's");
    assert.equal(v.got, headerFrom(v), "the PROXY header names the visitor's own address and port, not B's");
    // tunn connect: the user's TLS runs inside the stream and ends at the agent, on A and through B alike.
    for (const r of [a, b]) {
      const port = await connectVia(r, host, 'owner@example.com');
      const u = await tlsAsk(r, host, 'payload', { ca: agentCa.certPem, port });
      assert.match(u.got, /^from 127\.0\.0\.1:\d+ after the header: payload$/, `tunn connect through ${r === a ? 'A' : 'B'}`);
      assert.equal(u.pin, ev.pin);
    }
  });

  // Security: B only carries the raw TLS; A checks --allow-ip on the visitor's own address, before any byte reaches the agent.
  it('a public --terminate-at agent tunnel on A with --allow-ip 10.0.0.0/8: a visitor on 127.0.0.1 through B is refused by A and reaches nothing', async () => {
    const { host, agent } = await startAtAgent('walled', ['--public', '--allow-ip', '10.0.0.0/8']);
    await endsAtAgent(agent, host);
    const before = ppConnections;
    await until(async () => {
      await tlsAsk(b, host, 'payload', { ca: agentCa.certPem }).catch(() => undefined);
      return a.proc.lines.some((l) => l.event === 'cluster_link_refusal' && /not on the --allow-ip list/.test(String(l.reason)) && String(l.reason).includes(host));
    }, 15_000, 'A to refuse the raw TLS B carried, by --allow-ip');
    await assert.rejects(tlsAsk(b, host, 'payload', { ca: agentCa.certPem }), 'no handshake at all');
    assert.equal(ppConnections, before, 'no connection reached the target');
  });

  it('a --terminate-at agent tunnel on A during fallback: B ends TLS as A does and the target gets plain bytes; with --no-fallback the handshake fails at B as at A', async () => {
    const fb = await startAtAgent('fallback', ['--public'], `other.${a.domain}`);
    await fb.agent.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && /not fallback\./.test(String(l.reason)), 30_000);
    const atA = await tlsAsk(a, fb.host, 'payload');
    assert.equal(atA.got, headerFrom(atA), 'A terminated (its certificate verified) and carried plain bytes');
    await until(async () => (await tlsAsk(b, fb.host, 'payload').catch(() => ({ got: '' }))).got.includes('after the header'), 10_000, `${b.url} to end TLS for the tunnel in fallback on A`);
    const v = await tlsAsk(b, fb.host, 'payload');
    assert.equal(v.got, headerFrom(v), "B's certificate verified, the target got plain bytes and the visitor's address");
    // Without --tls-cert (this relay offers the agent no ACME): in fallback for good, through B as on A.
    const bare = await startAtAgent('bare', ['--public'], null);
    await bare.agent.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay', 30_000);
    const bareAtA = await tlsAsk(a, bare.host, 'payload');
    assert.equal(bareAtA.got, headerFrom(bareAtA));
    await until(async () => (await tlsAsk(b, bare.host, 'payload').catch(() => ({ got: '' }))).got.includes('after the header'), 10_000, `${b.url} to end TLS for the tunnel without --tls-cert on A`);

    const strict = await startAtAgent('strict', ['--public', '--no-fallback'], `else.${a.domain}`);
    await strict.agent.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && /not strict\./.test(String(l.reason)), 30_000);
    // B knows the lease (tunn connect through B is let in), so what follows is B's answer, not ignorance of the name.
    await connectVia(b, strict.host, 'owner@example.com');
    const before = ppConnections;
    const failure = async (r: RelayHandle, ca: string) => tlsAsk(r, strict.host, 'payload', { ca }).then((x) => `answered ${x.got}`, (err: Error) => `refused: ${err.message}`);
    for (const ca of [agentCa.certPem, a.ca]) {
      const atHolder = await failure(a, ca);
      assert.match(atHolder, /^refused/);
      assert.equal(await failure(b, ca), atHolder, 'B fails the handshake as A does');
    }
    assert.equal(ppConnections, before, 'no connection reached the target');
  });

  // Security: a private tunnel has no SNI route on any relay: a stranger's ClientHello at B never reaches the agent.
  it('a private --terminate-at agent tunnel on A: a raw TLS ClientHello with its SNI at B never reaches the agent (426 from the relay, as at A); tunn connect through B does', async () => {
    const { host, agent } = await startAtAgent('hidden', ['-a', 'ann@example.com']);
    const ev = await agent.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 30_000);
    // B knows the tunnel: ann's tunn connect through it reaches the agent (its pin) and the target.
    const port = await connectVia(b, host, 'ann@example.com');
    const u = await tlsAsk(b, host, 'payload', { ca: agentCa.certPem, port });
    assert.match(u.got, /after the header: payload$/);
    assert.equal(u.pin, ev.pin);
    const before = ppConnections;
    for (const r of [a, b]) {
      const v = await tlsAsk(r, host, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, { insecure: true });
      assert.notEqual(v.pin, ev.pin, `the stranger's handshake at ${r === a ? 'A' : 'B'} was not with the agent`);
      assert.match(v.got, /^HTTP\/1\.1 426 /, 'a relay ended TLS and answered 426, as for every private tls tunnel');
    }
    assert.equal(ppConnections, before, 'nothing reached the target');
  });
});
