import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../support/cluster.ts';
import { echoThrough, retry } from '../support/public-port-client.ts';
import { freeTcpUdpPort } from '../support/free-udp-port.ts';
import { readyOf, startCli, type Proc, type RelayHandle } from './harness.ts';

// Issue 14: public TCP and UDP ports are open on every relay of a cluster and carried to the
// relay holding the tunnel. Relay A listens on 127.0.0.1 and relay B on 127.0.0.2, so both bind
// the same public port; the agent is on A only, and clients reach the port through B.

/** One datagram to host:port and the first answer (rejects after 2 s without one). */
async function udpRoundTrip(host: string, port: number, text: string): Promise<string> {
  const s = dgram.createSocket('udp4');
  try {
    s.send(text, port, host);
    const answer = once(s, 'message') as Promise<[Buffer]>;
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no UDP answer within 2 s')), 2000).unref());
    const [msg] = await Promise.race([answer, timeout]);
    return msg.toString();
  } finally {
    s.close();
  }
}

describe('public ports on every relay of a cluster (real processes, PostgreSQL)', () => {
  let cluster: TestCluster;
  let tokenFile = '';
  let a: RelayHandle;

  let tcpPort = 0;
  let udpPort = 0;
  let echo: net.Server;
  let udpEcho: dgram.Socket;
  const procs: Proc[] = [];

  const startKind = async (args: string[]): Promise<{ proc: Proc; ready: Record<string, unknown> }> => {
    const proc = startCli([...args, '--relay', a.url, '--relay-ca', a.caPath, '--token-file', tokenFile, '--json'], { env: { TUNN_CONFIG_DIR: join(cluster.dir, 'config'), TUNN_RELAY: '', TUNN_TOKEN: '' } });
    procs.push(proc);
    const ready = await readyOf(proc);
    return { proc, ready };
  };

  before(async () => {
    tcpPort = await freeTcpUdpPort();
    udpPort = await freeTcpUdpPort();
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    udpEcho = dgram.createSocket('udp4');
    udpEcho.on('message', (msg, r) => udpEcho.send(msg, r.port, r.address));
    udpEcho.bind(0, '127.0.0.1');
    await once(udpEcho, 'listening');
    cluster = await startCluster({ relays: 2, prefix: 'tunn-e2e-cluster-ports-', hosts: ['127.0.0.1', '127.0.0.2'], extra: ['--tcp-ports', String(tcpPort), '--udp-ports', String(udpPort)] });
    [a] = cluster.relays as [RelayHandle, RelayHandle];
    tokenFile = await cluster.tokenFile('owner@example.com');
  });
  after(async () => {
    for (const p of procs) await p.kill();
    echo?.close();
    udpEcho?.close();
    await cluster?.stop();
  });

  it('a public TCP port whose agent is on A is open on B too, and closes there when the tunnel goes', async () => {
    const tcp = await startKind(['tcp', String((echo.address() as AddressInfo).port), '-n', 'mc', '--public']);
    assert.equal(tcp.ready.port, tcpPort);
    assert.equal(await echoThrough('127.0.0.1', tcpPort, 'through A'), 'through A');
    // B binds the port once it reads A's lease (NOTIFY, or its 2 s re-read): a generous ceiling.
    assert.equal(await retry(() => echoThrough('127.0.0.2', tcpPort, 'through B')), 'through B');

    await tcp.proc.kill();
    // The lease goes: B stops listening (a refused connection, as a port with nothing behind it).
    await retry(async () => {
      const err = await echoThrough('127.0.0.2', tcpPort, 'after').then(() => undefined, (e: NodeJS.ErrnoException) => e);
      assert.equal(err?.code, 'ECONNREFUSED', 'B still listens on the port of a tunnel that is gone');
      // A generous ceiling: at worst the lease expires (10 s TTL) and B's 2 s re-read sees it; a loaded machine was seen
      // to need more than 30 s.
    }, 90_000);
  });

  it('a public UDP port whose agent is on A answers through B', async () => {
    const udp = await startKind(['udp', String((udpEcho.address() as AddressInfo).port), '-n', 'game', '--public']);
    assert.equal(udp.ready.port, udpPort);
    assert.equal(await retry(() => udpRoundTrip('127.0.0.2', udpPort, 'datagram through B')), 'datagram through B');
    await udp.proc.kill();
  });

  it("B carries a client of A's tunnel with its address: A's --allow-ip refuses it", async () => {
    // Security: --allow-ip holds for clients who reach the port through another relay.
    const tcp = await startKind(['tcp', String((echo.address() as AddressInfo).port), '-n', 'mc', '--public', '--allow-ip', '10.0.0.0/8']);
    assert.equal(tcp.ready.port, tcpPort);
    await retry(async () => {
      const got = await echoThrough('127.0.0.2', tcpPort, 'refused').then((t) => `answered ${t}`, (e: NodeJS.ErrnoException) => e.code);
      assert.equal(got, 'ECONNRESET');
    });
    await tcp.proc.kill();
  });
});
