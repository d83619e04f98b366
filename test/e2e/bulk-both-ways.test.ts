import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { sendBulk } from '../support/bulk.ts';
import { freeTcpUdpPort } from '../support/free-udp-port.ts';
import { createToken, readyOf, startAgent, startCli, startRelay, tmpDir, type AgentHandle, type Proc, type RelayHandle } from './harness.ts';

// Guards tunn's promise of correct streaming: visitors that upload and download bulk data at
// the same time through a relay and an agent never stall. It used to stall for good (~1 MiB
// down / ~8 MiB up, then nothing until the idle timeout) in most runs of one such connection:
// both ends of the agent link's HTTP/2 session stopped reading their socket while their own
// write was in progress (Node does that), with windows large enough for both writes to wait on
// the other's full receive buffer. The agent's session now reads its socket whatever it is
// writing (src/protocol/h2-options.ts, AGENT_SESSION_WINDOW). Several connections at once make the old stall certain
// rather than likely. SIZE_MIB (default 16) sets the size each way per connection.

const CONNECTIONS = 3;

let relay: RelayHandle;
let agent: AgentHandle;
let origin: http.Server;
describe('bulk both ways at once through a tunnel', () => {
  before(async () => {
    // An echo-like origin: it streams as many bytes back as the request announces, while it reads.
    origin = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let done = false;
      req.resume();
      req.on('end', () => {
        done = true;
      });
      const chunk = Buffer.alloc(64 * 1024, 2);
      let sent = 0;
      const size = Number(req.headers['content-length']);
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (done) res.end();
        else req.once('end', () => res.end());
      };
      pump();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    relay = await startRelay();
    agent = await startAgent(relay, await createToken(relay, 'a@example.com'), (origin.address() as AddressInfo).port, ['--public']);
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    origin?.close();
  });

  const upAndDown = (size: number): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      let sent = 0;
      let got = 0;
      const req = https.request(`${agent.url}/echo`, { method: 'POST', ca: relay.ca, lookup: localhostAwareLookup as never, agent: false, headers: { 'content-length': String(size) } }, (res) => {
        res.on('data', (c: Buffer) => (got += c.length));
        res.on('end', () => resolve(got));
        res.on('error', reject);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
      setTimeout(() => reject(new Error(`stalled: ${got} of ${size} bytes down, ${sent} up after 60 s`)), 60_000).unref();
    });

  it(`${CONNECTIONS} visitors each upload and download 16 MiB at once (the origin writes while it reads)`, async () => {
    const size = Number(process.env.SIZE_MIB ?? 16) * 1024 * 1024;
    const got = await Promise.all(Array.from({ length: CONNECTIONS }, () => upAndDown(size)));
    assert.deepEqual(got, Array(CONNECTIONS).fill(size));
  });
});

// The same through a tcp tunnel's public port (`tunn tcp`): its streams ride the same agent link,
// and raw TCP carries bulk both ways at once often (ssh, rsync, database dumps and restores).
// Without the fix this stalled in 2 runs of 2.
describe('bulk both ways at once through a tcp tunnel', () => {
  const dir = tmpDir('tunn-bulk-tcp-');
  let tcpRelay: RelayHandle;
  let target: net.Server;
  let agentProc: Proc | undefined;
  let publicPort = 0;
  const SIZE = 16 * 1024 * 1024;
  before(async () => {
    // The target reads everything while it sends SIZE bytes back.
    target = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.resume();
      sendBulk(s, SIZE, 3);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    publicPort = await freeTcpUdpPort();
    tcpRelay = await startRelay({ extra: ['--tcp-ports', String(publicPort)] });
    const tokenFile = join(dir.path, 'token');
    writeFileSync(tokenFile, (await createToken(tcpRelay, 'a@example.com')) + '\n', { mode: 0o600 });
    agentProc = startCli(['tcp', String((target.address() as AddressInfo).port), '-n', 'bulk', '--public', '--relay', tcpRelay.url, '--relay-ca', tcpRelay.caPath, '--token-file', tokenFile, '--json'], {
      env: { TUNN_CONFIG_DIR: join(dir.path, 'config'), TUNN_RELAY: '', TUNN_TOKEN: '' },
    });
    await readyOf(agentProc);
  });
  after(async () => {
    await agentProc?.kill();
    await tcpRelay?.stop();
    target?.close();
    dir.remove();
  });

  it(`${CONNECTIONS} connections each send and receive 16 MiB at once`, async () => {
    const one = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: publicPort, allowHalfOpen: true });
        let got = 0;
        c.on('data', (d: Buffer) => (got += d.length));
        c.on('end', () => {
          c.end();
          resolve(got);
        });
        c.on('error', reject);
        c.on('connect', () => sendBulk(c, SIZE, 3));
        setTimeout(() => reject(new Error(`stalled: ${got} of ${SIZE} bytes down after 60 s`)), 60_000).unref();
      });
    const got = await Promise.all(Array.from({ length: CONNECTIONS }, one));
    assert.deepEqual(got, Array(CONNECTIONS).fill(SIZE));
  });
});
