import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { echoTcpTarget, LINK_DOMAIN as DOMAIN, linkAgent, relayStream, startRelaySide, type RelaySide } from '../../test/support/agent-link.ts';
import { TARGET_ERROR_HEADER, type StreamKind } from '../protocol/messages.ts';
import type { Agent } from './agent.ts';
import { parseTarget } from './target.ts';

// Defence in depth for --client-ca (TLS at the agent with client certificates): a stream whose
// TLS the relay ended (`http`, or `tcp` for tls --backend tcp) never asked for a client
// certificate, so the agent refuses it even when a relay falls back anyway (a relay that ignores
// --no-fallback, an older one). Real parts in one process: tunnels.ts (AgentSession) behind a
// TLS listener, the real Agent dialling it, a real TCP target counting connections.

describe('the agent refuses relay-terminated streams for a --client-ca tunnel', () => {
  let relay: RelaySide;
  let target: Awaited<ReturnType<typeof echoTcpTarget>>;
  let agent: Agent;
  const notices: string[] = [];
  const connections = () => target.sockets.length;

  before(async () => {
    relay = await startRelaySide({ caName: 'tunn client-cert-required test CA', streamIdleMs: { tcp: 60_000, udp: 60_000 } });
    target = await echoTcpTarget();
    const to = parseTarget(String(target.port));
    agent = linkAgent(relay, {
      tunnels: [
        { target: to, name: 'guarded', allow: [], public: true, clientCertRequired: true },
        { target: to, name: 'open', allow: [], public: true },
      ],
    });
    agent.on('notice', (m: string) => notices.push(m));
    let ready = 0;
    const both = new Promise((r, j) => {
      agent.on('ready', () => ++ready === 2 && r(undefined));
      agent.once('fatal', j);
    });
    agent.start();
    await both;
  });

  after(async () => {
    agent?.stop();
    target?.close();
    await relay?.close();
  });

  /** Opens a stream of `kind` as the relay does when it ended TLS itself; resolves with the agent's answer headers. */
  async function open(name: string, kind: StreamKind): Promise<IncomingHttpHeaders> {
    const s = relayStream(relay, `${name}.${DOMAIN}`, { kind, client: '192.0.2.7', clientPort: 40000 });
    s.on('error', () => {});
    const [headers] = (await once(s, 'response')) as [IncomingHttpHeaders];
    if (Number(headers[':status']) === 200) {
      s.write('hello');
      await once(s, 'data');
    }
    s.destroy();
    return headers;
  }

  it('answers a relay-terminated tcp or http stream 403 FORBIDDEN, and the target never sees a connection; the same stream for a tunnel without it gets through', async () => {
    const before = connections();
    for (const kind of ['tcp', 'http'] as const) {
      const h = await open('guarded', kind);
      assert.equal(h[':status'], 403, `a ${kind} stream is refused`);
      assert.equal(h[TARGET_ERROR_HEADER], 'FORBIDDEN');
    }
    assert.equal(connections(), before, 'no connection reached the target');
    assert.ok(notices.some((m) => /guarded\..*--client-ca/.test(m)), `the owner is told why: ${notices.join(' | ')}`);
    // The test can fail: the same kind of stream for a tunnel without --client-ca reaches the target.
    const h = await open('open', 'tcp');
    assert.equal(h[':status'], 200);
    assert.equal(connections(), before + 1);
  });
});
