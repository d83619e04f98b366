import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { account, identityFixture } from '../../test/fixtures/identity.ts';

describe('GroupService', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let acct: { id: string; email: string };
  before(async () => {
    id = await identityFixture();
    acct = await account(id, 'owner@example.com');
  });
  after(() => id.close());

  it('creates, lists, shows, adds, removes and deletes, with normalised emails', async () => {
    const g = await id.groups.create(acct.id, 'Eng', ['Bob@Corp.com', 'alice@gmail.com', 'bob@corp.com']);
    assert.equal(g.name, 'eng');
    assert.deepEqual(g.emails, ['alice@gmail.com', 'bob@corp.com']);
    await id.groups.add(acct.id, 'eng', ['carol@corp.com']);
    assert.deepEqual((await id.groups.show(acct.id, 'eng')).emails, ['alice@gmail.com', 'bob@corp.com', 'carol@corp.com']);
    await id.groups.remove(acct.id, 'eng', ['ALICE@gmail.com']);
    assert.deepEqual((await id.groups.list(acct.id)).map((x) => [x.name, x.emails.length]), [['eng', 2]]);
    await id.groups.delete(acct.id, 'eng');
    assert.deepEqual(await id.groups.list(acct.id), []);
  });

  it('refuses bad input by name and changes nothing', async () => {
    await id.groups.create(acct.id, 'ops', ['a@x.com']);
    await assert.rejects(id.groups.create(acct.id, 'ops', ['b@x.com']), (e) => isTunnError(e, 'CONFLICT') && e.message.includes('"ops"'));
    await assert.rejects(id.groups.add(acct.id, 'ops', ['good@x.com', 'not-an-email']), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('"not-an-email"'));
    await assert.rejects(id.groups.create(acct.id, 'bad name', []), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('"bad name"'));
    await assert.rejects(id.groups.remove(acct.id, 'ops', ['nobody@x.com']), (e) => isTunnError(e, 'NOT_FOUND') && e.message.includes('nobody@x.com'));
    await assert.rejects(id.groups.show(acct.id, 'nosuch'), (e) => isTunnError(e, 'UNKNOWN_GROUP') && e.message.includes('"nosuch"'));
    await assert.rejects(id.groups.delete(acct.id, 'nosuch'), (e) => isTunnError(e, 'UNKNOWN_GROUP'));
    assert.deepEqual((await id.groups.show(acct.id, 'ops')).emails, ['a@x.com']);
  });

  it('keeps groups per account', async () => {
    const other = await account(id, 'other@example.com');
    await id.groups.create(other.id, 'ops', ['z@x.com']);
    assert.deepEqual((await id.groups.show(acct.id, 'ops')).emails, ['a@x.com']);
    assert.deepEqual((await id.groups.show(other.id, 'ops')).emails, ['z@x.com']);
  });
});
