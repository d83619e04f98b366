import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forwardRequestHeaders, parseForwardRequest } from '../protocol/cluster-link.ts';
import { linkUserOf, principalOfLinkUser } from './connect-route.ts';

describe('tunn connect over the cluster link', () => {
  // Security property: a `tunn connect` stream carried to the holding relay keeps the key that
  // signed its user's token, so retiring that key cuts the stream there (live-revocation.ts
  // matches a retired key against the principal's kid).
  it("keeps the user's token key from the dialling relay to the holding relay", () => {
    const who = { email: 'ann@example.com', accountId: 'acc1', credentialId: 'jti1', kid: 'k-old' };
    const user = linkUserOf(who, 'open');
    const r = parseForwardRequest(forwardRequestHeaders({ host: 'db.tunn.example.com', kind: 'tcp', client: '127.0.0.1:5', connect: user }));
    assert.ok(r.ok);
    assert.deepEqual(principalOfLinkUser(r.request.connect!), who);
    // A session-backed user has no key: none is invented.
    assert.deepEqual(principalOfLinkUser(linkUserOf({ email: 'bob@example.com', credentialId: 's1' }, 'check')), { email: 'bob@example.com', credentialId: 's1' });
  });
});
