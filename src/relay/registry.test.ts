import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry } from './registry.ts';
import type { SessionRef, TunnelInit } from './tunnel-directory.ts';

// The in-memory tunnel directory against its contract (tunnel-directory.ts): lookups,
// sessions joining, take-over by another agent, going offline exactly once, round robin.

function session(id: string, agentId: string, told: string[] = []): SessionRef & { alive: boolean; told: string[] } {
  return {
    id, agentId, alive: true, told,
    openStream: () => {
      throw new Error('no data streams here');
    },
    replaced: (tunnelId, message) => void told.push(`replaced ${tunnelId}: ${message}`),
    refuse: (tunnelId, code) => void told.push(`refused ${tunnelId} ${code}`),
    send: () => {},
  };
}

const metrics = new RelayMetrics();
function init(name: string, agentId: string, accountId = 'acc-1'): TunnelInit {
  const host = `${name}.tunn.localhost`;
  return { id: `t-${agentId}`, host, name, domain: 'tunn.localhost', accountId, email: 'alice@example.com', agentId, options: { id: `t-${agentId}`, allow: [], public: true }, metrics: metrics.forTunnel(host) };
}

describe('TunnelRegistry (the in-memory TunnelDirectory)', () => {
  it('finds a tunnel by host and by name or host for its account only', () => {
    const d = new TunnelRegistry();
    const t = d.attach(init('web', 'a1'), session('s1', 'a1'), 1000);
    assert.equal(d.get('web.tunn.localhost'), t);
    assert.deepEqual(d.byName('acc-1', 'web'), [t]);
    assert.deepEqual(d.byName('acc-1', 'web.tunn.localhost'), [t]);
    assert.deepEqual(d.byName('acc-2', 'web'), [], 'another account does not see it');
    assert.equal(d.size, 1);
    assert.deepEqual(d.all(), [t]);
  });

  it('joins the sessions of one agent to one tunnel, keeping when it came online', () => {
    const d = new TunnelRegistry();
    const s1 = session('s1', 'a1');
    const s2 = session('s2', 'a1');
    const t = d.attach(init('web', 'a1'), s1, 1000);
    assert.equal(d.attach(init('web', 'a1'), s2, 5000), t);
    assert.deepEqual(t.sessions, [s1, s2]);
    assert.equal(t.since, 1000);
  });

  // Guards take-over: the previous agent is told, and stops receiving the host's streams.
  it('moves a host to another agent of the account and tells every session of the old one', () => {
    const d = new TunnelRegistry();
    const told: string[] = [];
    const old1 = session('s1', 'a1', told);
    const old2 = session('s2', 'a1', told);
    d.attach(init('web', 'a1'), old1, 1000);
    d.attach(init('web', 'a1'), old2, 1000);
    const fresh = session('s3', 'a2');
    const t = d.attach(init('web', 'a2'), fresh, 9000);
    assert.deepEqual(t.sessions, [fresh]);
    assert.equal(t.since, 9000);
    assert.deepEqual(told, ['replaced t-a1: the tunnel web.tunn.localhost was taken over by another agent of alice@example.com', 'replaced t-a1: the tunnel web.tunn.localhost was taken over by another agent of alice@example.com']);
    assert.deepEqual(d.detach(old1), [], 'the old agent leaving does not take the host down');
    assert.equal(d.get('web.tunn.localhost'), t);
  });

  it('reports a tunnel offline once, when its last session leaves or unregisters', () => {
    const d = new TunnelRegistry();
    const s1 = session('s1', 'a1');
    const s2 = session('s2', 'a1');
    const t = d.attach(init('web', 'a1'), s1, 1);
    d.attach(init('web', 'a1'), s2, 1);
    assert.deepEqual(d.detach(s1), []);
    assert.equal(d.detachTunnel(s2, 'other-id'), undefined, 'not its tunnel');
    assert.equal(d.detachTunnel(s2, t.id), t);
    assert.equal(d.get('web.tunn.localhost'), undefined);
    assert.deepEqual(d.detach(s2), []);
  });

  it('spreads new connections over live sessions round robin, skipping dead ones', () => {
    const d = new TunnelRegistry();
    const s = [session('s1', 'a1'), session('s2', 'a1'), session('s3', 'a1')];
    let t = d.attach(init('web', 'a1'), s[0]!, 1);
    for (const x of s.slice(1)) t = d.attach(init('web', 'a1'), x, 1);
    assert.deepEqual([1, 2, 3, 4].map(() => d.pickSession(t)!.id), ['s1', 's2', 's3', 's1']);
    s[1]!.alive = false;
    assert.deepEqual([1, 2, 3].map(() => d.pickSession(t)!.id), ['s3', 's1', 's3']);
    for (const x of s) x.alive = false;
    assert.equal(d.pickSession(t), undefined);
  });
});
