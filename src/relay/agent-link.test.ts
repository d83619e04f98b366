import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LINK_DOMAIN as DOMAIN, linkAgent, relayStream, startRelaySide, type RelaySide } from '../../test/support/agent-link.ts';
import type { Agent, AgentConfig } from '../agent/agent.ts';
import { parseTarget } from '../agent/target.ts';
import { TARGET_ERROR_HEADER, type StreamKind } from '../protocol/messages.ts';

// The agent link in one process, with the real parts on both ends: a TLS listener with ALPN
// tunn/1 feeding tunnels.ts (AgentSession, registration, the in-memory directory), the real
// Agent dialling it, a real token service and store, and a real origin.

describe('agent link (relay sessions, registration, stream kinds)', () => {
  let relay: RelaySide;
  let directory: RelaySide['directory'];
  let origin: http.Server;
  const agents: Agent[] = [];

  before(async () => {
    relay = await startRelaySide({ caName: 'tunn agent-link test CA', grants: true });
    directory = relay.directory;
    origin = http.createServer((req, res) => res.end(`origin saw ${req.method} ${req.url}`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    for (const a of agents) a.stop();
    origin.close();
    await relay.close();
  });

  function agent(over: Partial<AgentConfig> = {}, name = 'web'): Agent {
    const a = linkAgent(relay, {
      tunnels: [{ target: parseTarget(String((origin.address() as AddressInfo).port)), kind: 'http', name, allow: [], public: true }],
      ...over,
    });
    agents.push(a);
    a.start();
    return a;
  }

  const once = <T>(a: Agent, ev: 'ready' | 'fatal'): Promise<T> => new Promise((r) => a.once(ev, r as never));

  /** Opens a data stream of `kind` from the relay's side; returns its status, error header and bytes. */
  async function openStream(host: string, kind: StreamKind, send: string): Promise<{ status: number; code: string | undefined; body: string }> {
    const s = relayStream(relay, host, { kind, client: '192.0.2.7' });
    s.end(send);
    const [headers] = (await new Promise((r) => s.once('response', (h) => r([h])))) as [Record<string, unknown>];
    let body = '';
    s.setEncoding('latin1').on('data', (d: string) => (body += d));
    await new Promise((r) => s.once('close', r));
    return { status: Number(headers[':status']), code: headers[TARGET_ERROR_HEADER] as string | undefined, body };
  }

  it('registers the tunnel and carries an http stream to the target', async () => {
    const a = agent();
    const ready = await once<{ host: string; url: string }>(a, 'ready');
    assert.equal(ready.host, `web.${DOMAIN}`);
    const r = await openStream(ready.host, 'http', 'GET /hello HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
    assert.match(r.body, /^HTTP\/1\.1 200 OK[\s\S]*origin saw GET \/hello$/);
  });

  it('refuses a stream of a kind the agent does not serve with a typed code, and keeps serving', async () => {
    const host = `web.${DOMAIN}`;
    const debug: string[] = [];
    agents[0]!.on('debug', (m) => debug.push(m));
    // A kind from a newer relay (every kind this agent knows has a handler).
    const r = await openStream(host, 'quic' as StreamKind, 'datagrams');
    assert.ok(debug.some((m) => /refused a data stream of kind quic for web\.tunn\.localhost: this agent does not serve it/.test(m)), debug.join('\n'));
    assert.deepEqual({ status: r.status, code: r.code, body: r.body }, { status: 501, code: 'STREAM_KIND', body: '' });
    assert.equal((await openStream(host, 'http', 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n')).status, 200);
  });

  // Guards take-over: a second agent of the same account takes the name; the first is told
  // (REPLACED, fatal) and new streams go to the new agent only.
  it('lets a second agent of the same account take the name over, telling the first', async () => {
    const first = agents[0]!;
    const replaced = once<Error & { code?: string }>(first, 'fatal');
    const second = agent();
    await once(second, 'ready');
    const err = await replaced;
    assert.equal(err.code, 'REPLACED');
    assert.match(err.message, /taken over by another agent of alice@example\.com/);
    const t = directory.get(`web.${DOMAIN}`)!;
    assert.equal(t.agentId, second.agentId);
    assert.equal((await openStream(t.host, 'http', 'GET /again HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n')).status, 200);
  });

  it('refuses a hello with a token the relay did not issue, for good', async () => {
    const a = agent({ token: 'tunn_not-a-token' }, 'other');
    const err = await once<Error & { code?: string }>(a, 'fatal');
    assert.equal(err.code, 'AUTH_INVALID_TOKEN');
    assert.equal(directory.get(`other.${DOMAIN}`), undefined);
  });

  it('answers a tunnel option the relay refuses with the field and what to do, for good', async () => {
    const a = agent({ tunnels: [{ target: parseTarget('1'), kind: 'http', name: 'bad', allow: ['group:nope'], public: false }] }, 'bad');
    const err = await once<Error & { code?: string }>(a, 'fatal');
    assert.equal(err.code, 'UNKNOWN_GROUP');
    assert.equal(directory.get(`bad.${DOMAIN}`), undefined);
  });
});
