import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { createApiApp } from '../api/app.ts';
import { pathParams } from '../api/client.ts';
import { isTunnError } from '../lib/errors.ts';
import { RelayApi } from './api-client.ts';

// The CLI's API client: the typed client (src/api/client.ts) over the CLI's node:http transport,
// against the real API app on a loopback port. Its refusals keep the CLI's messages.

describe('the CLI on the typed API client', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let server: Server;
  let notJson: Server;
  let relay: string;
  let token: string;

  before(async () => {
    id = await identityFixture();
    server = createServer(getRequestListener(createApiApp(id).fetch));
    notJson = createServer((_, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'));
    await Promise.all([server, notJson].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    relay = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const me = await account(id, 'me@example.com');
    token = (await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email })).token;
  });
  after(async () => {
    server.close();
    notJson.close();
    await id.close();
  });

  it('calls typed routes: bodies, path parameters (encoded) and answers', async () => {
    const api = new RelayApi({ relay, token, tokenFrom: 'flags' });
    const created = await api.call((c) => c.v1.groups.$post({ json: { name: 'eng', emails: ['a@x.com'] } }));
    assert.deepEqual(created.group.emails, ['a@x.com']);
    const added = await api.call((c) => c.v1.groups[':name'].members.$post({ param: pathParams({ name: 'eng' }), json: { emails: ['b+tag@x.com'] } }));
    assert.deepEqual(added.group.emails, ['a@x.com', 'b+tag@x.com']);
    const removed = await api.call((c) => c.v1.groups[':name'].members[':email'].$delete({ param: pathParams({ name: 'eng', email: 'b+tag@x.com' }) }));
    assert.deepEqual(removed.group.emails, ['a@x.com']);
    // A name with a slash stays one path parameter (and is refused by name, not routed elsewhere).
    await assert.rejects(
      api.call((c) => c.v1.groups[':name'].$get({ param: pathParams({ name: 'eng/../x' }) })),
      (e) => isTunnError(e, 'INVALID_INPUT') && /^"eng\/\.\.\/x" is not a valid group name/.test(e.message),
    );
  });

  it('turns the API\'s refusals into its error codes and messages', async () => {
    const api = new RelayApi({ relay, token, tokenFrom: 'flags' });
    await assert.rejects(api.call((c) => c.v1.groups.$post({ json: { name: 'eng' } })), (e) => isTunnError(e, 'CONFLICT'));
    await assert.rejects(
      api.call((c) => c.v1.events.$get({ query: { limit: 'ten' } })),
      (e) => isTunnError(e, 'INVALID_INPUT') && e.message === '"limit" must be a whole number',
    );
  });

  it('says to sign in when there is no token, or when the saved one stopped working', async () => {
    await assert.rejects(new RelayApi({ relay }).call((c) => c.v1.me.$get()), (e) => isTunnError(e, 'AUTH_REQUIRED') && e.message.includes(`not signed in to ${relay}: run \`tunn login --relay ${relay}\``));
    const t = await id.tokens.issue({ accountId: (await account(id, 'me@example.com')).id, kind: 'pat', email: 'me@example.com' });
    await id.tokens.revoke(t.jti);
    await assert.rejects(
      new RelayApi({ relay, token: t.token, tokenFrom: 'login' }).call((c) => c.v1.me.$get()),
      (e) => isTunnError(e, 'AUTH_TOKEN_REVOKED') && e.message.startsWith(`the sign-in saved for ${relay} no longer works (`) && e.message.endsWith(`: run \`tunn login --relay ${relay}\``),
    );
  });

  it('says when the relay cannot be reached, or is not a tunn relay', async () => {
    const other = `http://127.0.0.1:${(notJson.address() as AddressInfo).port}`;
    await assert.rejects(
      new RelayApi({ relay: other, token }).call((c) => c.v1.me.$get()),
      (e) => isTunnError(e, 'UNAVAILABLE') && e.message === `${other}/v1/me answered 502 with a body that is not JSON: is it a tunn relay?`,
    );
    await assert.rejects(
      new RelayApi({ relay: 'http://127.0.0.1:1', token }).call((c) => c.v1.me.$get()),
      (e) => isTunnError(e, 'UNAVAILABLE') && e.message === 'cannot reach http://127.0.0.1:1: ECONNREFUSED (is the relay running?)',
    );
  });
});
