import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { echoTcpTarget, LINK_DOMAIN as DOMAIN, linkAgent, relayStream, startAgent, startRelaySide, type RelaySide } from '../../../test/support/agent-link.ts';
import { systemClock } from '../../lib/clock.ts';
import type { Agent } from '../agent.ts';
import { parseTarget } from '../target.ts';
import { agentTerminatedTls } from './serve.ts';
import { leaf, testCa } from './testing.ts';

// `tunn tls --backend tcp --terminate-at agent`: the relay's --tcp-idle reaches the agent on each
// `tls` stream (DATA_HEADERS.idleMs), and the agent's connection to the target follows it, not
// its own default (an hour). Real parts in one process: tunnels.ts (AgentSession) behind a TLS
// listener, the real Agent with its real TLS termination, a TLS client over the stream, a real
// TCP target.

const RELAY_TCP_IDLE_MS = 400;

describe("agent-terminated tls --backend tcp follows the relay's --tcp-idle", () => {
  let relay: RelaySide;
  let target: Awaited<ReturnType<typeof echoTcpTarget>>;
  let agent: Agent;
  let closeTls: () => void;
  let certCa: string;
  const stateDir = mkdtempSync(join(tmpdir(), 'tunn-tls-idle-'));

  before(async () => {
    relay = await startRelaySide({ caName: 'tunn tls-stream-idle test CA', streamIdleMs: { tcp: RELAY_TCP_IDLE_MS, udp: 60_000 } });
    target = await echoTcpTarget();
    const tca = await testCa();
    certCa = tca.certPem;
    const files = await leaf(tca, [`db.${DOMAIN}`]);
    const to = parseTarget(String(target.port));
    const t = agentTerminatedTls({
      tunnelId: 't0',
      policy: { tunnelId: 't0', public: true },
      target: to,
      relayUrl: relay.relayUrl,
      stateDir,
      files,
      keepKey: false,
      tcp: { proxyProtocol: false },
      clock: systemClock,
      ask: () => Promise.reject(new Error('unused')),
      report: () => {},
      onState: () => {},
      onError: () => {},
    });
    closeTls = () => t.close();
    agent = linkAgent(relay, { tunnels: [{ target: to, kind: 'tls', backend: 'tcp', name: 'db', allow: [], public: true }], streamHandlers: t.streamHandlers });
    await t.start((await startAgent(agent)).host, undefined);
  });

  after(async () => {
    closeTls?.();
    agent?.stop();
    target?.close();
    await relay?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it(`closes a silent connection to the target after the relay's ${RELAY_TCP_IDLE_MS} ms, sent on the tls stream`, async () => {
    // As the relay's AgentTlsRelay opens it for a tls --backend tcp tunnel: with the relay's --tcp-idle.
    const stream = relayStream(relay, `db.${DOMAIN}`, { kind: 'tls', client: '192.0.2.7', clientPort: 40000, idleMs: RELAY_TCP_IDLE_MS });
    stream.on('error', () => {});
    await once(stream, 'response');
    const c = tls.connect({ socket: stream as never, servername: `db.${DOMAIN}`, ca: certCa });
    c.on('error', () => {});
    await once(c, 'secureConnect');
    c.write('hi');
    const [answer] = (await once(c, 'data')) as [Buffer];
    assert.equal(answer.toString(), 'echo: hi', 'the connection reached the target (the test can fail)');
    const toTarget = target.sockets.at(-1)!;
    const sent = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const closedAt = await Promise.race([new Promise<number>((r) => toTarget.once('close', () => r(Date.now()))), new Promise<number>((r) => (timer = setTimeout(() => r(-1), 20_000)))]);
    clearTimeout(timer);
    c.destroy();
    assert.notEqual(closedAt, -1, 'the agent ended the silent connection within 20 s (its own default is an hour)');
    assert.ok(closedAt - sent >= RELAY_TCP_IDLE_MS - 100, `not before the relay's limit (${closedAt - sent} ms)`);
  });
});
