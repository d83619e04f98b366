import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once as onceEvent } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LINK_DOMAIN as DOMAIN, linkAgent, relayStream, startAgent, startRelaySide, type RelaySide } from '../../test/support/agent-link.ts';
import type { Agent } from '../agent/agent.ts';
import { parseTarget } from '../agent/target.ts';
import { DEFAULT_UDP_FLOW_IDLE_MS } from '../agent/kinds/udp.ts';
import { CapsuleDecoder, encodeDatagram } from '../protocol/capsules.ts';

// The relay's --udp-flow-idle reaches the agent: each udp (and tcp) stream carries the relay's idle
// limit (DATA_HEADERS.idleMs), and the agent ends a silent flow after the relay's limit, not its own
// 60 s default. Real parts in one process: tunnels.ts (AgentSession) behind a TLS listener, the real
// Agent dialling it, a real UDP echo as the target.

const RELAY_UDP_IDLE_MS = 500;

describe("the agent follows the relay's udp flow idle", () => {
  let relay: RelaySide;
  let echo: dgram.Socket;
  let agent: Agent;

  before(async () => {
    relay = await startRelaySide({ caName: 'tunn stream-idle test CA', streamIdleMs: { tcp: 3_600_000, udp: RELAY_UDP_IDLE_MS } });
    echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await onceEvent(echo, 'listening');
    agent = linkAgent(relay, { tunnels: [{ target: parseTarget(String((echo.address() as AddressInfo).port)), kind: 'udp', name: 'game', allow: [], public: false }] });
    await startAgent(agent);
  });

  after(async () => {
    agent?.stop();
    echo?.close();
    await relay?.close();
  });

  it(`ends a silent flow after the relay's ${RELAY_UDP_IDLE_MS} ms, not the agent's own ${DEFAULT_UDP_FLOW_IDLE_MS / 1000} s`, async () => {
    // As a public UDP port or `tunn connect --udp` opens a flow: the session adds the relay's idle limit.
    const s = relayStream(relay, `game.${DOMAIN}`, { kind: 'udp', client: '192.0.2.7', clientPort: 5353 });
    s.on('error', () => {});
    const got: Buffer[] = [];
    const d = new CapsuleDecoder({ onDatagram: (p) => got.push(p) });
    s.on('data', (c: Buffer) => d.push(c));
    const ended = new Promise<number>((r) => s.once('close', () => r(Date.now())));
    const sent = Date.now();
    s.write(encodeDatagram(Buffer.from('ping')));
    // The flow works (the echo answers through it) ...
    for (const end = Date.now() + 10_000; got.length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got.map(String), ['ping']);
    // ... then, silent both ways, the agent ends it: after the relay's limit, long before its own default
    // (a generous ceiling on a noisy machine; the test's relay side never ends it on its own).
    let timer: NodeJS.Timeout | undefined;
    const closedAt = await Promise.race([ended, new Promise<number>((r) => (timer = setTimeout(() => r(-1), 20_000)))]);
    clearTimeout(timer);
    assert.notEqual(closedAt, -1, `the agent ended the silent flow within 20 s (its own default is ${DEFAULT_UDP_FLOW_IDLE_MS / 1000} s)`);
    assert.ok(closedAt - sent >= RELAY_UDP_IDLE_MS - 50, `not before the relay's limit (${closedAt - sent} ms)`);
  });
});
