import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALPN_CLUSTER_LINK, forwardRequestHeaders, LINK_ERRORS, LINK_HEADERS, LINK_STREAM_KINDS, LINK_VERSION, parseForwardRequest } from './cluster-link.ts';

// Pins the inter-relay link's wire words: relays of one cluster may run different builds for
// the length of a rolling upgrade, so a change here is a new link version.

describe('cluster link protocol', () => {
  it('pins the ALPN id, version, header names, kinds and refusal codes', () => {
    assert.equal(ALPN_CLUSTER_LINK, 'tunn-link/1');
    assert.equal(LINK_VERSION, 1);
    assert.deepEqual(LINK_HEADERS, { version: 'tunn-link-version', kind: 'tunn-kind', client: 'tunn-client', error: 'tunn-link-error', message: 'tunn-link-message', connect: 'tunn-connect', userEmail: 'tunn-user-email', userAccount: 'tunn-user-account', userCredential: 'tunn-user-credential', userKid: 'tunn-user-kid' });
    assert.deepEqual(LINK_STREAM_KINDS, ['http', 'tcp', 'udp', 'tls', 'acme-tls-alpn']);
    assert.deepEqual(LINK_ERRORS, { NOT_HERE: 404, BAD_REQUEST: 400, VERSION: 505, UNAVAILABLE: 503, FORBIDDEN: 403 });
  });

  it('round-trips a request, normalising the host', () => {
    const h = forwardRequestHeaders({ host: 'grafana.tunn.example.com', kind: 'http', client: '[2001:db8::1]:443' });
    assert.deepEqual(parseForwardRequest({ ...h, ':authority': 'Grafana.TUNN.example.com.' }), { ok: true, request: { host: 'grafana.tunn.example.com', kind: 'http', client: '[2001:db8::1]:443' } });
  });

  it('round-trips a tunn connect stream with the user the dialling relay authenticated', () => {
    const req = { host: 'db.tunn.example.com', kind: 'tcp' as const, client: '127.0.0.1:5', connect: { method: 'check' as const, email: 'ann@example.com', accountId: 'acc1', credentialId: 'jti1' } };
    assert.deepEqual(parseForwardRequest(forwardRequestHeaders(req)), { ok: true, request: req });
    const bare = forwardRequestHeaders({ host: 'db.tunn.example.com', kind: 'tcp', client: '127.0.0.1:5' });
    assert.equal(bare[LINK_HEADERS.connect], undefined, 'a visitor connection carries no user');
    // A connect stream without its user is refused, not served as someone unnamed.
    const r = parseForwardRequest({ ...bare, [LINK_HEADERS.connect]: 'open' });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.message, /^connect\.email:/);
  });

  // Security property: retiring a signing key cuts `tunn connect` streams carried to another
  // relay too: the holding relay learns the key that signed the user's token. A relay of an
  // older build sends no key, and its streams are still served (the jti is still revocable).
  it("carries the key that signed the user's token, and still takes a request without one", () => {
    const req = { host: 'db.tunn.example.com', kind: 'udp' as const, client: '127.0.0.1:5', connect: { method: 'open' as const, email: 'ann@example.com', accountId: 'acc1', credentialId: 'jti1', kid: 'k-2026' } };
    const h = forwardRequestHeaders(req);
    assert.equal(h[LINK_HEADERS.userKid], 'k-2026');
    assert.deepEqual(parseForwardRequest(h), { ok: true, request: req });
    const { [LINK_HEADERS.userKid]: _, ...older } = h;
    const { kid: __, ...withoutKid } = req.connect;
    assert.deepEqual(parseForwardRequest(older), { ok: true, request: { ...req, connect: withoutKid } });
  });

  it('refuses what it cannot carry, saying what was wrong', () => {
    const good = forwardRequestHeaders({ host: 'a.tunn.example.com', kind: 'tcp', client: '127.0.0.1:1' });
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ ...good, ':method': 'GET' }, 'BAD_REQUEST', /CONNECT requests only, not GET/],
      [{ ...good, [LINK_HEADERS.version]: '2' }, 'VERSION', /speaks link version 1, the request says 2: run the same tunn version/],
      [{ ...good, ':authority': 'a b' }, 'BAD_REQUEST', /^host: must be a tunnel host name/],
      [{ ...good, ':authority': 'evil.example.com:443' }, 'BAD_REQUEST', /^host:/],
      [{ ...good, [LINK_HEADERS.kind]: 'smtp' }, 'BAD_REQUEST', /^kind: must be one of http, tcp/],
      [{ ...good, [LINK_HEADERS.client]: 'x\ty' }, 'BAD_REQUEST', /^client: must be an address/],
    ];
    for (const [headers, code, message] of cases) {
      const r = parseForwardRequest(headers);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.code, code);
        assert.match(r.message, message);
      }
    }
  });
});
