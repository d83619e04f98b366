import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { claimName } from '../store/accounts.ts';
import { createApiApp, type ApiApp } from './app.ts';

// /v1/grants (what `tunn grant add|list|rm` call) and /v1/me's IdP groups, in-process.

describe('/v1/grants', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let app: ApiApp;
  const headers: Record<string, Record<string, string>> = {};
  const req = (who: string, method: string, path: string, body?: unknown) => app.request(path, { method, headers: headers[who], body: body === undefined ? undefined : JSON.stringify(body) }, { clientIp: '192.0.2.10' });

  before(async () => {
    id = await identityFixture({ idp: { directory: { label: 'the test directory', groupsOf: async (e) => (e === 'owner@example.com' ? ['Engineering'] : []) } } });
    app = createApiApp(id);
    for (const email of ['owner@example.com', 'mallory@example.com']) {
      const a = await account(id, email);
      const { token } = await id.tokens.issue({ accountId: a.id, kind: 'pat', email, label: 'test' });
      headers[email] = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    }
    const owner = await account(id, 'owner@example.com');
    await claimName(id.store, 'tunn.localhost', 'demo', owner.id);
  });
  after(() => id.close());

  it('adds, lists and removes a grant on a tunnel the caller holds', async () => {
    const add = await req('owner@example.com', 'POST', '/v1/grants', { host: 'demo.tunn.localhost', who: 'bob@client.com', for: '2h' });
    assert.equal(add.status, 201);
    const { grant } = (await add.json()) as { grant: { id: string; expiresAt: string } };
    assert.equal(Date.parse(grant.expiresAt) - id.manualClock.now(), 7200_000);
    const list = (await (await req('owner@example.com', 'GET', '/v1/grants?host=demo.tunn.localhost')).json()) as { grants: { id: string }[] };
    assert.deepEqual(list.grants.map((g) => g.id), [grant.id]);
    const rm = await req('owner@example.com', 'DELETE', `/v1/grants?host=demo.tunn.localhost&who=bob@client.com`);
    assert.deepEqual(await rm.json(), { removed: 1 });
  });

  it('refuses with messages that say what to do: a tunnel of someone else, a bad duration, a bad entry, nothing to remove', async () => {
    // Guards: nobody can grant access to (or list, or end grants of) another account's tunnel.
    const other = await req('mallory@example.com', 'POST', '/v1/grants', { host: 'demo.tunn.localhost', who: 'mallory@example.com', for: '1h' });
    assert.equal(other.status, 404);
    assert.match(((await other.json()) as { error: { message: string } }).error.message, /you have no tunnel at demo\.tunn\.localhost/);
    const bad = await req('owner@example.com', 'POST', '/v1/grants', { host: 'demo.tunn.localhost', who: 'bob@client.com', for: 'soon' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /e\.g\. 30m, 2h/);
    const entry = await req('owner@example.com', 'POST', '/v1/grants', { host: 'demo.tunn.localhost', who: 'bob', for: '1h' });
    assert.equal(entry.status, 400);
    const none = await req('owner@example.com', 'DELETE', '/v1/grants/nope');
    assert.equal(none.status, 404);
    assert.match(((await none.json()) as { error: { message: string } }).error.message, /tunn grant list/);
  });

  it('/v1/me shows the IdP groups the relay knows (tunn whoami)', async () => {
    const me = (await (await req('owner@example.com', 'GET', '/v1/me')).json()) as { idpGroups: string[]; idpProblems: string[] };
    assert.deepEqual(me.idpGroups, ['engineering']);
    assert.deepEqual(me.idpProblems, []);
  });
});
