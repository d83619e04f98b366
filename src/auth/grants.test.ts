import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { formatSeconds, parseDuration } from './grants.ts';
import type { PolicyTunnel } from './policy.ts';
import { account, identityFixture } from '../../test/fixtures/identity.ts';

// Access that expires, on the real store and policy with the fixture's manual clock.

describe('durations', () => {
  it('parses units and combinations; refuses garbage and more than a year with a message that shows the form', () => {
    assert.equal(parseDuration('2h'), 7200);
    assert.equal(parseDuration('1d12h'), 129600);
    assert.equal(parseDuration(' 90s '), 90);
    assert.equal(parseDuration('1w'), 604800);
    for (const bad of ['', '2', 'h', '2x', '-1h', '0m', '2h garbage']) assert.throws(() => parseDuration(bad), (e) => isTunnError(e, 'INVALID_INPUT') && /e\.g\. 30m, 2h/.test(e.message), bad);
    assert.throws(() => parseDuration('400d'), (e) => isTunnError(e, 'INVALID_INPUT') && /longer than a year/.test(e.message));
    assert.equal(formatSeconds(5400), '1h30m');
  });
});

describe('grants', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let owner: { id: string; email: string };
  const HOST = 'demo.tunn.localhost';
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
  });
  after(() => id.close());

  const forTunnel = (ref: string): PolicyTunnel => ({ ownerAccountId: owner.id, ownerEmail: owner.email, allow: [], public: false, host: HOST, grantRef: ref });

  it('--for: the entries end at first registration + duration; re-registering does not extend; the owner stays', async () => {
    // Guards: a reconnect (the same run re-sending register) cannot stretch access that was meant to end.
    const ref = 'run-aaaaaaaaaaaa';
    const t = forTunnel(ref);
    const ends = await id.grants.registerFor(owner.id, HOST, ref, ['bob@client.com'], 7200);
    assert.equal(await id.policy.allows(t, 'bob@client.com'), true);
    id.manualClock.advance(3600_000);
    assert.equal(await id.grants.registerFor(owner.id, HOST, ref, ['bob@client.com'], 7200), ends, 'same end after a reconnect');
    id.manualClock.advance(3600_000);
    assert.equal(await id.policy.allows(t, 'bob@client.com'), false, 'ended at 2 h exactly');
    assert.equal(await id.policy.allows(t, 'owner@example.com'), true);
    // A new run of the command (a new ref) starts a new period; the old run's grants do not apply to it.
    assert.equal(await id.policy.allows(forTunnel('run-bbbbbbbbbbbb'), 'bob@client.com'), false);
    await id.grants.registerFor(owner.id, HOST, 'run-bbbbbbbbbbbb', ['bob@client.com'], 60);
    assert.equal(await id.policy.allows(forTunnel('run-bbbbbbbbbbbb'), 'bob@client.com'), true);
    assert.equal(await id.policy.allows(forTunnel('run-cccccccccccc'), 'bob@client.com'), false, "another run's grant does not leak");
  });

  it('tunn grant add/list/rm on a live tunnel: takes effect at once, ends on its own, ends early when removed', async () => {
    const t: PolicyTunnel = { ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['alice@example.com'], public: false, host: HOST };
    const g = await id.grants.add(owner.id, HOST, 'Carol@Client.com', 600);
    assert.equal(g.entry, 'carol@client.com');
    assert.equal(g.via, 'grant');
    assert.equal(await id.policy.allows(t, 'carol@client.com'), true);
    assert.equal(await id.policy.allows(t, 'alice@example.com'), true, 'lasting entries stay');
    const listed = await id.grants.list(owner.id, HOST);
    assert.ok(listed.some((x) => x.id === g.id));
    assert.equal(await id.grants.remove(owner.id, { host: HOST, who: 'carol@client.com' }), 1);
    assert.equal(await id.policy.allows(t, 'carol@client.com'), false, 'removed → refused at once on this relay');
    await assert.rejects(id.grants.remove(owner.id, { id: g.id }), (e) => isTunnError(e, 'NOT_FOUND') && /tunn grant list/.test(e.message));
    await id.grants.add(owner.id, HOST, '@client.com', 60);
    id.manualClock.advance(60_000);
    assert.equal(await id.policy.allows(t, 'dan@client.com'), false, 'ended');
    assert.equal((await id.grants.list(owner.id, HOST)).some((x) => x.entry === '@client.com'), false, 'ended grants are not listed');
  });

  it("another account cannot list or remove the owner's grants", async () => {
    const other = await account(id, 'mallory@example.com');
    const g = await id.grants.add(owner.id, HOST, 'erin@client.com', 600);
    assert.deepEqual(await id.grants.list(other.id), []);
    await assert.rejects(id.grants.remove(other.id, { id: g.id }), (e) => isTunnError(e, 'NOT_FOUND'));
  });
});
