import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REFUSAL_DETAIL, MAX_REFUSAL_METHOD, MAX_REFUSAL_PATH, MAX_REFUSAL_WHO, MAX_REFUSALS_PER_REPORT, type ControlMessage, type Refusal } from '../protocol/messages.ts';
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

  // Property: a visitor cannot make one refusal big. The parser accepts a 60,000-character
  // method, and every unauthenticated request to a private tunnel is a sign-in refusal: uncut,
  // 20 a second would put ~1.3 MB/s per tunnel on the agent link.
  it('cuts the method, path, who and detail of every refusal it sends', () => {
    const sent: Sent[] = [];
    const reports = new RefusalReports({ send: (t, m) => sent.push({ tunnel: t, m }), intervalMs: 60_000 });
    const huge = 'A'.repeat(60_000);
    for (let i = 0; i < MAX_REFUSALS_PER_REPORT; i++) {
      reports.add(tunnel('t0', 'a.tunn.localhost'), refusal(i, { method: huge, path: '/' + huge, status: 403, reason: 'policy', who: `${huge}@x.com`, detail: huge }));
    }
    reports.flush();
    const r = sent[0]!.m.refusals[0]!;
    assert.equal(r.method.length, MAX_REFUSAL_METHOD);
    assert.equal(r.path.length, MAX_REFUSAL_PATH);
    assert.equal(r.who!.length, MAX_REFUSAL_WHO);
    assert.equal(r.detail!.length, MAX_REFUSAL_DETAIL);
    assert.ok(JSON.stringify(sent[0]!.m).length < 20 * 1024, 'a full report stays under 20 KiB');
    reports.stop();
  });
});
