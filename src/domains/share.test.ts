import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { createDomain, domainByName } from './records.ts';
import { shareDomain, unshareDomain } from './share.ts';

// Sharing rules in src/domains (the API routes call these): entries normalised and merged,
// every refusal says what was wrong and what to type instead.

let store: Store;
before(async () => {
  store = await openStore(':memory:');
  const a = await ensureAccount(store, 'owner@example.test');
  await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'share.example.test', relayDomain: 'relay.test' });
});
after(() => store.close());

it('shares with emails and email domains (comma lists too), without repeats', async () => {
  const d = (await domainByName(store, 'share.example.test'))!;
  assert.deepEqual(await shareDomain(store, d, ['@Corp.test', 'alice@x.test,bob@y.test', ' alice@x.test ']), ['@corp.test', 'alice@x.test', 'bob@y.test']);
});

it('refuses an empty list and a bad entry, saying what an entry looks like', async () => {
  const d = (await domainByName(store, 'share.example.test'))!;
  await assert.rejects(shareDomain(store, d, [' , ']), (e) => isTunnError(e, 'INVALID_INPUT') && /name who to share with: tunn domain share share\.example\.test @company\.com/.test(e.message));
  await assert.rejects(shareDomain(store, d, ['not an email']), (e) => isTunnError(e, 'INVALID_INPUT') && /neither an email \(alice@company\.com\) nor an email domain \(@company\.com\)/.test(e.message));
});

it('unshares one entry; an entry it is not shared with is NOT_FOUND listing who it is shared with', async () => {
  let d = (await domainByName(store, 'share.example.test'))!;
  assert.deepEqual(await unshareDomain(store, d, 'BOB@y.test'), ['@corp.test', 'alice@x.test']);
  d = (await domainByName(store, 'share.example.test'))!;
  await assert.rejects(unshareDomain(store, d, 'carol@z.test'), (e) => isTunnError(e, 'NOT_FOUND') && e.message === 'share.example.test is not shared with carol@z.test (shared with: @corp.test, alice@x.test)');
});
