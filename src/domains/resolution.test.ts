import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { ensureAccount, type Account } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { createDomain, markDomainVerified } from './records.ts';
import { lostDomainReason, relayTerminatesTls, resolveTunnelDomain } from './resolution.ts';

// The tunnel's kind decides whether the relay needs a certificate for its name; a passthrough
// domain (tls_mode, per domain) is one where the relay never holds certificates, so only the
// kinds that need none are served there.
// Security property: the relay never serves an http tunnel (TLS it terminates) on a domain whose
// owner said the relay holds no certificates there.

const RELAY = 'relay.test';

describe('tunnel domains by kind (passthrough domains)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-resolution-'));
  let store: Store;
  let owner: Account;
  before(async () => {
    store = await openStore(join(dir, 'tunn.db'));
    owner = await ensureAccount(store, 'owner@example.test');
    await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: 'pass.example.test', relayDomain: RELAY, tlsMode: 'passthrough' });
    await markDomainVerified(store, 'pass.example.test');
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('knows which kinds need the relay\'s certificate', () => {
    assert.equal(relayTerminatesTls(undefined), true);
    assert.equal(relayTerminatesTls({ kind: 'http' }), true);
    assert.equal(relayTerminatesTls({ kind: 'tls', backend: 'tcp' }), true);
    assert.equal(relayTerminatesTls({ kind: 'tls' }), false);
    assert.equal(relayTerminatesTls({ kind: 'tls', backend: 'raw' }), false);
    assert.equal(relayTerminatesTls({ kind: 'tcp' }), false);
    assert.equal(relayTerminatesTls({ kind: 'udp' }), false);
  });

  it('serves tls passthrough and tcp/udp tunnels on a passthrough domain, and refuses http there saying what fits', async () => {
    const caller = { accountId: owner.id, email: owner.email };
    assert.equal(await resolveTunnelDomain(store, RELAY, caller, 'pass.example.test', { kind: 'tls' }), 'pass.example.test');
    assert.equal(await resolveTunnelDomain(store, RELAY, caller, 'pass.example.test', { kind: 'tcp' }), 'pass.example.test');
    await assert.rejects(resolveTunnelDomain(store, RELAY, caller, 'pass.example.test', { kind: 'http' }), (e) => isTunnError(e, 'FORBIDDEN') && /passthrough domain: the relay holds no certificates there, so it serves only tunnels whose TLS ends at your service \(`tunn tls`\)/.test(e.message));
    await assert.rejects(resolveTunnelDomain(store, RELAY, caller, 'pass.example.test', { kind: 'tls', backend: 'tcp' }), (e) => isTunnError(e, 'FORBIDDEN'));
    // Without -d: the one usable domain for that kind.
    assert.equal(await resolveTunnelDomain(store, RELAY, caller, undefined, { kind: 'tls' }), 'pass.example.test');
    assert.equal(await resolveTunnelDomain(store, RELAY, caller, undefined, { kind: 'http' }), RELAY);
  });

  it('keeps a live tls tunnel on a passthrough domain, and says why an http one goes', async () => {
    const t = { domain: 'pass.example.test', accountId: owner.id, email: owner.email };
    assert.equal(await lostDomainReason(store, RELAY, { ...t, options: { kind: 'tls' } }), undefined);
    assert.match(String(await lostDomainReason(store, RELAY, { ...t, options: { kind: 'http' } })), /now a passthrough domain/);
  });
});
