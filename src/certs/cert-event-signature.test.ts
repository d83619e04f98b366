import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { certEventHeaders, ReplayGuard, signCertEvent, verifyCertEvent } from './cert-event-signature.ts';

// Security property (issue 9, seed 001 "cert-source provenance validation"): a cert event is
// accepted only with an HMAC-SHA256 of timestamp and body under the cert event token, within a
// 5-minute window of the relay's clock, and once. Each test names the attack it refuses.

const TOKEN = 'cert-event-secret-0123456789';
const BODY = JSON.stringify({ domain: 'shop.example.com', status: 'issued' });
const NOW = Date.parse('2026-12-01T12:00:00Z');

function check(headers: { timestamp?: string; signature?: string; legacyToken?: string }, opts: { body?: string; now?: number; guard?: ReplayGuard } = {}) {
  return verifyCertEvent({ token: TOKEN, headers, body: opts.body ?? BODY, now: opts.now ?? NOW, guard: opts.guard ?? new ReplayGuard() });
}
const signedAt = (ms: number, body = BODY, token = TOKEN) => {
  const h = certEventHeaders(token, body, ms);
  return { timestamp: h['x-cert-event-timestamp'], signature: h['x-cert-event-signature'] };
};

describe('cert event signatures', () => {
  it('the signature is HMAC-SHA256(token, "<timestamp>.<body>") in hex after sha256= (what senders implement)', () => {
    const expected = 'sha256=' + createHmac('sha256', TOKEN).update(`1764590400.${BODY}`).digest('hex');
    assert.equal(signCertEvent(TOKEN, '1764590400', BODY), expected);
    assert.deepEqual(certEventHeaders(TOKEN, BODY, 1764590400_999), { 'x-cert-event-timestamp': '1764590400', 'x-cert-event-signature': expected });
  });

  it('accepts a good signature', () => {
    assert.deepEqual(check(signedAt(NOW)), { ok: true });
    assert.deepEqual(check(signedAt(NOW - 299_000)), { ok: true }, 'within the window');
  });

  it('refuses a signature made with another key, or over another body (forgery, tampering)', () => {
    const r = check(signedAt(NOW, BODY, 'another-token-0123456789'));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.status, 401);
    assert.match(!r.ok ? r.message : '', /^x-cert-event-signature does not match: sign "<timestamp>.<the exact body bytes>"/);
    assert.equal(check(signedAt(NOW), { body: BODY.replace('issued', 'tls_error') }).ok, false);
    // The timestamp is signed too: moving it forward breaks the signature.
    const s = signedAt(NOW - 600_000);
    assert.equal(check({ ...s, timestamp: String(NOW / 1000) }).ok, false);
  });

  it('refuses malformed signatures without decoding a prefix of them', () => {
    const good = signedAt(NOW).signature;
    for (const signature of ['', 'sha256=', good.slice(0, -2), good + 'zz', good + '00', good.replace('sha256=', 'sha1='), good.replace('sha256=', '')]) {
      const r = check({ timestamp: String(NOW / 1000), signature });
      assert.equal(r.ok, false, signature);
      assert.equal(!r.ok && r.status, 401, signature);
    }
  });

  it('refuses a stale or future timestamp (a captured request replayed later), saying by how much', () => {
    const stale = check(signedAt(NOW - 301_000));
    assert.deepEqual(stale, { ok: false, status: 401, message: 'x-cert-event-timestamp is 301 s old (allowed: 300 s): sign each event when sending it, and check the sender\'s clock (NTP)' });
    const future = check(signedAt(NOW + 400_000));
    assert.equal(!future.ok && future.message.startsWith('x-cert-event-timestamp is 400 s in the future'), true);
    const nonsense = check({ timestamp: '2026-12-01T12:00:00Z', signature: signedAt(NOW).signature });
    assert.equal(!nonsense.ok && nonsense.message, `x-cert-event-timestamp must be the time of signing in Unix seconds, e.g. ${NOW / 1000}`);
  });

  it('refuses a replay within the window, in any spelling of the signature', () => {
    const guard = new ReplayGuard();
    const s = signedAt(NOW);
    assert.deepEqual(check(s, { guard }), { ok: true });
    const again = check(s, { guard, now: NOW + 60_000 });
    assert.equal(!again.ok && again.status, 409);
    assert.match(!again.ok ? again.message : '', /already received: a signature is accepted once; sign each event afresh/);
    assert.equal(check({ ...s, signature: s.signature.toUpperCase().replace('SHA256=', 'sha256=') }, { guard }).ok, false);
    // Once the timestamp is out of the window the stale check refuses it, and the guard forgets it.
    assert.equal(check(s, { guard, now: NOW + 301_000 }).ok, false);
  });

  it('refuses unsigned requests and the old token header, saying how to sign', () => {
    const unsigned = check({});
    assert.equal(!unsigned.ok && unsigned.status, 401);
    assert.match(!unsigned.ok ? unsigned.message : '', /^unsigned cert event: sign each request: x-cert-event-timestamp: <Unix seconds> and x-cert-event-signature: sha256=<hex HMAC-SHA256/);
    const legacy = check({ ...signedAt(NOW), legacyToken: TOKEN });
    assert.equal(!legacy.ok && legacy.status, 401);
    assert.match(!legacy.ok ? legacy.message : '', /^x-cert-event-token is not accepted: it sends the secret itself with every request\. Drop it and sign/);
  });

  it('keeps a bounded set: full means refused (not evicted), expired entries are dropped', () => {
    const guard = new ReplayGuard({ max: 3 });
    for (let i = 0; i < 3; i++) assert.deepEqual(check(signedAt(NOW, `{"n":${i}}`), { guard, body: `{"n":${i}}` }), { ok: true });
    const full = check(signedAt(NOW, '{"n":3}'), { guard, body: '{"n":3}' });
    assert.equal(!full.ok && full.status, 429);
    assert.equal(guard.size, 3);
    // Five minutes on, the first three have left the window and the set.
    const later = NOW + 301_000;
    assert.deepEqual(check(signedAt(later, '{"n":4}'), { guard, body: '{"n":4}', now: later }), { ok: true });
    assert.equal(guard.size, 1);
  });
});
