import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { createApiApp } from '../api/app.ts';
import { createDomain } from '../domains/records.ts';
import { RelayApi } from './api-client.ts';
import { terminateAtForDomain } from './domain-tls-default.ts';

// Issue 12's contract: on a custom domain added with `tunn domain add D --terminate-at agent`, TLS ends at the agent
// by default (no --terminate-at needed); elsewhere the default stays the relay. Against the real API app on loopback.

describe('where TLS ends by default on a custom domain', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let server: Server;
  let api: RelayApi;

  before(async () => {
    id = await identityFixture();
    server = createServer(getRequestListener(createApiApp(id).fetch));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const me = await account(id, 'me@example.com');
    const relayDomain = id.relayUrl.hostname;
    await createDomain(id.store, { accountId: me.id, acmeId: 'a1', domain: 'agent.example.org', relayDomain, tlsMode: 'agent' });
    await createDomain(id.store, { accountId: me.id, acmeId: 'a1', domain: 'fallback.example.org', relayDomain, tlsMode: 'agent', allowRelayFallback: true });
    await createDomain(id.store, { accountId: me.id, acmeId: 'a1', domain: 'relay.example.org', relayDomain });
    const token = (await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email })).token;
    api = new RelayApi({ relay: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token, tokenFrom: 'flags' });
  });
  after(async () => {
    server.close();
    await id.close();
  });

  it('is the agent on a domain added with --terminate-at agent (with or without --allow-relay-fallback)', async () => {
    assert.equal(await terminateAtForDomain(api, 'agent.example.org'), 'agent');
    assert.equal(await terminateAtForDomain(api, 'fallback.example.org'), 'agent');
  });

  it('stays the relay on other domains, unknown ones, and when the relay cannot say', async () => {
    assert.equal(await terminateAtForDomain(api, 'relay.example.org'), undefined);
    assert.equal(await terminateAtForDomain(api, 'nope.example.org'), undefined);
    assert.equal(await terminateAtForDomain(new RelayApi({ relay: 'http://127.0.0.1:9', token: 't' }), 'agent.example.org'), undefined);
  });
});
