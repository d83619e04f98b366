import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REFUSALS_PER_REPORT, type ControlMessage, type Refusal } from '../protocol/messages.ts';
import { RelayMetrics } from './metrics.ts';
import { RefusalReports } from './refusal-reports.ts';
import type { Tunnel } from './registry.ts';

type Sent = { tunnel: Tunnel; m: Extract<ControlMessage, { type: 'refused' }> };

function tunnel(id: string, host: string): Tunnel {
  return { id, host, name: host.split('.')[0]!, domain: 'tunn.localhost', accountId: 'a', email: 'o@x.com', agentId: 'ag', options: { id, allow: [], public: true }, sessions: [], metrics: new RelayMetrics().forTunnel(host), next: 0, since: 0 };
}

const refusal = (i: number, over: Partial<Refusal> = {}): Refusal => ({ at: 1_700_000_000_000 + i, method: 'GET', path: `/r/${i}`, status: 429, reason: 'rate-limit', ip: '192.0.2.1', detail: '10/min per client IP', ...over });

describe('RefusalReports', () => {
  // Property: a flood of refused requests cannot flood the agent link. Per tunnel and second,
  // one message with at most MAX_REFUSALS_PER_REPORT refusals; the rest are only counted.
  it('sends one message per tunnel per interval, the first refusals one by one and the rest counted', () => {
    const sent: Sent[] = [];
    const reports = new RefusalReports({ send: (t, m) => sent.push({ tunnel: t, m }), intervalMs: 60_000 });
    const a = tunnel('t0', 'a.tunn.localhost');
    const b = tunnel('t1', 'b.tunn.localhost');
    for (let i = 0; i < 10_000; i++) reports.add(a, refusal(i, i % 2 ? { status: 403, reason: 'ip', detail: 'not in --allow-ip' } : {}));
    reports.add(b, refusal(0, { status: 403, reason: 'policy', who: 'bob@x.com' }));
    assert.equal(sent.length, 0, 'nothing goes out before the interval ends');
    reports.flush();
    assert.equal(sent.length, 2);
    const toA = sent.find((s) => s.tunnel === a)!.m;
    assert.equal(toA.id, 't0');
    assert.equal(toA.refusals.length, MAX_REFUSALS_PER_REPORT);
    assert.deepEqual(toA.refusals[0], refusal(0));
    const counted = toA.more.reduce((n, x) => n + x.count, 0);
    assert.equal(counted, 10_000 - MAX_REFUSALS_PER_REPORT);
    assert.deepEqual(
      toA.more.map((x) => [x.status, x.reason]).sort(),
      [
        [403, 'ip'],
        [429, 'rate-limit'],
      ],
    );
    assert.ok(JSON.stringify(toA).length < 10_000, 'the message stays small');
    const toB = sent.find((s) => s.tunnel === b)!.m;
    assert.equal(toB.refusals[0]!.who, 'bob@x.com');
    assert.deepEqual(toB.more, []);
    // Nothing pending: nothing sent.
    reports.flush();
    assert.equal(sent.length, 2);
    reports.stop();
  });

  it('flushes by itself after the interval', async () => {
    const sent: Sent[] = [];
    const reports = new RefusalReports({ send: (t, m) => sent.push({ tunnel: t, m }), intervalMs: 20 });
    reports.add(tunnel('t0', 'a.tunn.localhost'), refusal(1));
    const end = Date.now() + 5000;
    while (sent.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.m.refusals.length, 1);
    reports.stop();
  });
});
