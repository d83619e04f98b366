import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { createApiApp } from './app.ts';

// GET /v1/cluster: operators only; a relay outside a cluster says how relays join one.

describe('GET /v1/cluster', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  const bearer = async (email: string) => {
    const a = await account(id, email);
    return { authorization: `Bearer ${(await id.tokens.issue({ accountId: a.id, kind: 'pat', email: a.email, label: 't' })).token}` };
  };
  before(async () => {
    id = await identityFixture({ dev: true, adminEmails: ['ops@example.com'] });
  });
  after(() => id.close());

  it('shows the status to operators, refuses others, and says when the relay is not in a cluster', async () => {
    const status = { nodes: [], leases: [] };
    const clustered = createApiApp(id, { clusterStatus: async () => status });
    const ops = await bearer('ops@example.com');
    const ok = await clustered.request('/v1/cluster', { headers: ops });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), status);
    const other = await clustered.request('/v1/cluster', { headers: await bearer('zed@example.com') });
    assert.equal(other.status, 403);
    const single = await createApiApp(id).request('/v1/cluster', { headers: ops });
    assert.equal(single.status, 404);
    assert.match(((await single.json()) as { error: { message: string } }).error.message, /not part of a cluster: relays join one with --node-url and a postgres:\/\/ --store/);
  });
});
