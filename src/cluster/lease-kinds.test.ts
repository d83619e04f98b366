import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTerminatedKind, leaseKindOf, routedRaw, tunnelKindOfLease } from './lease-kinds.ts';

// A lease's kind tells every other relay how the holder treats a visitor of the tunnel.
// Security property: only passthrough and agent-terminated tunnels are routed raw (never
// decrypted elsewhere), and a private tls tunnel is never given an SNI route.

describe('lease kinds', () => {
  it('tells the tls tunnels apart: private, --backend tcp, raw passthrough, TLS at the agent', () => {
    assert.equal(leaseKindOf({ kind: 'tls', public: false }, false), 'tls-private');
    assert.equal(leaseKindOf({ kind: 'tls', public: false, backend: 'tcp' }, false), 'tls-private');
    assert.equal(leaseKindOf({ kind: 'tls', public: false, backend: 'tcp' }, true), 'tls-private', 'private: no SNI route, even if its TLS ends at the agent');
    assert.equal(leaseKindOf({ kind: 'tls', public: true, backend: 'tcp' }, false), 'tls-tcp');
    assert.equal(leaseKindOf({ kind: 'tls', public: true, backend: 'tcp' }, true), 'tls-tcp-at-agent', 'not an http tunnel’s tls-at-agent: tunn connect reaches it');
    assert.equal(leaseKindOf({ kind: 'tls', public: true }, false), 'tls');
    assert.equal(leaseKindOf({ kind: 'tls', public: true, backend: 'raw' }, false), 'tls');
    assert.equal(leaseKindOf({ public: false }, false), 'http');
    assert.equal(leaseKindOf({ kind: 'http', public: true }, true), 'tls-at-agent');
    assert.equal(leaseKindOf({ kind: 'tcp', public: true }, false), 'tcp');
    assert.equal(leaseKindOf({ kind: 'udp', public: false }, false), 'udp');
  });

  it('routes raw only passthrough and agent-terminated TLS; relays end TLS (and order certificates) only where the holder does', () => {
    assert.deepEqual((['http', 'tcp', 'udp', 'tls', 'tls-tcp', 'tls-private', 'tls-at-agent', 'tls-tcp-at-agent'] as const).filter(routedRaw), ['tls', 'tls-at-agent', 'tls-tcp-at-agent']);
    assert.deepEqual((['http', 'tcp', 'udp', 'tls', 'tls-tcp', 'tls-private', 'tls-at-agent', 'tls-tcp-at-agent'] as const).filter(isTerminatedKind), ['http', 'tls-tcp', 'tls-at-agent', 'tls-tcp-at-agent']);
    assert.equal(routedRaw(undefined), false);
  });

  // A public tls --backend tcp tunnel at its agent is reached by tunn connect on its holder: through any relay too (was 'http': refused as not found).
  it('gives tunn connect the tunnel kind behind a lease', () => {
    assert.deepEqual((['http', 'tcp', 'udp', 'tls', 'tls-tcp', 'tls-private', 'tls-at-agent', 'tls-tcp-at-agent'] as const).map(tunnelKindOfLease), ['http', 'tcp', 'udp', 'tls', 'tls', 'tls', 'http', 'tls']);
  });
});
