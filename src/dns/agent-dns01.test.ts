import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { agentDns01, Dns01Budget } from './agent-dns01.ts';
import { RelayZone } from './relay-zone.ts';

describe("the relay's DNS-01 for agents", () => {
  const zone = new RelayZone({ domain: 'relay.test', publicIps: ['127.0.0.1'] });

  it('publishes only _acme-challenge.<a name the agent holds> under its zone, and removes it after', async () => {
    // Security: an agent cannot have TXT records published for a name it does not hold.
    const dns = agentDns01(zone, (h) => h === 'mine.relay.test');
    await dns.present('_acme-challenge.Mine.Relay.Test.', 'v1');
    assert.deepEqual(zone.records('_acme-challenge.mine.relay.test').map((r) => r.value), ['v1']);
    await dns.cleanup('_acme-challenge.mine.relay.test', 'v1');
    assert.deepEqual(zone.records('_acme-challenge.mine.relay.test'), []);
    await assert.rejects(dns.present('_acme-challenge.theirs.relay.test', 'v'), /does not hold a tunnel for theirs\.relay\.test/);
    await assert.rejects(dns.present('mine.relay.test', 'v'), /only ask for _acme-challenge\.<its name> under relay\.test/);
    await assert.rejects(dns.present('_acme-challenge.mine.elsewhere.test', 'v'), /only ask for/);
    await assert.rejects(dns.cleanup('_acme-challenge.theirs.relay.test', 'v'), /does not hold/);
  });

  it('counts challenges per account and rolling week, and says when the next is possible', async () => {
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    const budget = new Dns01Budget({ perWeek: 2, clock });
    const dns = agentDns01(zone, () => true, { budget, accountId: 'acct1' });
    await dns.present('_acme-challenge.a.relay.test', 'x');
    clock.advance(1000);
    await dns.present('_acme-challenge.b.relay.test', 'y');
    assert.equal(budget.remaining('acct1'), 0);
    assert.equal(budget.remaining('acct2'), 2);
    await assert.rejects(dns.present('_acme-challenge.c.relay.test', 'z'), { code: 'RATE_LIMITED', message: /used their 2 DNS-01 challenges for this week; the next one is possible at 2026-12-08T00:00:00\.000Z/ });
    assert.deepEqual(zone.records('_acme-challenge.c.relay.test'), [], 'nothing published over the budget');
    clock.advance(7 * 86_400_000 - 500); // the first is a week old, the second not yet
    assert.equal(budget.remaining('acct1'), 1);
  });
});
