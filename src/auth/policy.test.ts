import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { parseAllowEntry, parseAllowList } from './policy.ts';
import { account, identityFixture } from '../../test/fixtures/identity.ts';

describe('allow entries', () => {
  it('parses emails, @domains and groups, normalising case', () => {
    assert.deepEqual(parseAllowEntry(' Alice@Example.COM '), { kind: 'email', email: 'alice@example.com' });
    assert.deepEqual(parseAllowEntry('@Corp.com'), { kind: 'domain', domain: 'corp.com' });
    assert.deepEqual(parseAllowEntry('group:Eng'), { kind: 'group', name: 'eng' });
  });

  it('refuses malformed entries with an error naming each one', () => {
    for (const bad of ['alice', 'alice@', '@', '@corp', 'a@b@c.com', 'group:', 'group:bad name', 'alice@exa mple.com', '@-corp.com']) {
      assert.throws(() => parseAllowEntry(bad), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes(`"${bad}"`), bad);
    }
    assert.throws(
      () => parseAllowList(['ok@x.com', 'nope', 'group:???']),
      (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('"nope"') && e.message.includes('"group:???"'),
    );
  });
});

describe('Policy', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let owner: { id: string; email: string };
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
  });
  after(() => id.close());

  const tunnel = (allow: string[], pub = false) => ({ ownerAccountId: owner.id, ownerEmail: owner.email, allow, public: pub });

  it('is private by default: only the owner gets in', async () => {
    const t = tunnel([]);
    assert.equal(await id.policy.allows(t, 'owner@example.com'), true);
    assert.equal(await id.policy.allows(t, 'someone@example.com'), false);
    assert.equal(await id.policy.allows(tunnel([], true), 'someone@example.com'), true);
  });

  it('matches emails and whole domains, never a look-alike domain', async () => {
    const t = tunnel(['alice@gmail.com', '@corp.com']);
    assert.equal(await id.policy.allows(t, 'alice@gmail.com'), true);
    assert.equal(await id.policy.allows(t, 'bob@corp.com'), true);
    assert.equal(await id.policy.allows(t, 'bob@evilcorp.com'), false);
    assert.equal(await id.policy.allows(t, 'bob@sub.corp.com'), false);
    assert.equal(await id.policy.allows(t, 'alice@gmail.com.evil.com'), false);
  });

  it('expands groups at evaluation time, so a change applies to a live tunnel on the next check', async () => {
    await id.groups.create(owner.id, 'eng', ['a@x.com']);
    const t = tunnel(['group:eng']);
    assert.equal(await id.policy.allows(t, 'b@x.com'), false);
    await id.groups.add(owner.id, 'eng', ['b@x.com']);
    assert.equal(await id.policy.allows(t, 'b@x.com'), true);
    await id.groups.remove(owner.id, 'eng', ['b@x.com']);
    assert.equal(await id.policy.allows(t, 'b@x.com'), false);
    await id.groups.delete(owner.id, 'eng');
    assert.equal(await id.policy.allows(t, 'a@x.com'), false);
  });

  it("uses the owner's groups only", async () => {
    const other = await account(id, 'other@example.com');
    await id.groups.create(other.id, 'ops', ['mallory@x.com']);
    assert.equal(await id.policy.allows(tunnel(['group:ops']), 'mallory@x.com'), false);
  });

  it('validates at tunnel start: an unknown group is refused by name', async () => {
    await id.groups.create(owner.id, 'known', ['k@x.com', 'l@x.com']);
    const ok = await id.policy.validate(owner.id, ['group:known', 'Z@X.com']);
    assert.deepEqual(ok, { entries: ['group:known', 'z@x.com'], groups: [{ name: 'known', emails: 2 }] });
    await assert.rejects(id.policy.validate(owner.id, ['group:known', 'group:nosuch']), (e) => isTunnError(e, 'UNKNOWN_GROUP') && e.message.includes('group:nosuch'));
    await assert.rejects(id.policy.validate(owner.id, ['bad-entry']), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('"bad-entry"'));
  });
});
