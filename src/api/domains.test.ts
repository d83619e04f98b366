import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Hono } from 'hono';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { relayDecisionFunc } from '../certs/decision.ts';
import { createCa } from '../certs/dev-ca.ts';
import { CertManager } from '../certs/manager.ts';
import { SelfSignedIssuer } from '../certs/self-signed-issuer.ts';
import { Zone } from '../dns/zone.ts';
import { isTunnError } from '../lib/errors.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { randomBytes } from 'node:crypto';
import { startDnsWorld, type DnsWorld } from '../../test/support/dns-world.ts';
import { customDomainDecider, relayCertBackends } from '../domains/cert-lifecycle.ts';
import { domainByName } from '../domains/records.ts';
import { resolveTunnelDomain } from '../domains/resolution.ts';
import { certEventHeaders } from '../certs/cert-event-signature.ts';
import { certRoutes } from './certificates.ts';
import { domainRoutes } from './domains.ts';
import { errorBody, statusOf, type ApiEnv } from './http.ts';

const RELAY = 'relay.test';
type Id = Awaited<ReturnType<typeof identityFixture>>;

describe('API /v1/domains and /v1/certs', () => {
  let id: Id;
  let world: DnsWorld;
  let zone: Zone;
  let manager: CertManager;
  let app: Hono<ApiEnv>;
  const headers: Record<string, Record<string, string>> = {};
  const accounts: Record<string, { id: string; accountId: string; email: string; acme: string }> = {};
  const call = async (who: string | undefined, method: string, path: string, body?: unknown, extra: Record<string, string> = {}) => {
    const res = await app.request(path, { method, headers: { ...(who ? headers[who] : {}), 'content-type': 'application/json', ...extra }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  before(async () => {
    id = await identityFixture();
    for (const [k, email] of [['owner', 'owner@example.test'], ['bob', 'bob@corp.test'], ['carol', 'carol@else.test'], ['mallory', 'mallory@evil.test']] as const) {
      const a = await account(id, email);
      const row = await id.store.db.selectFrom('accounts').select('acme_id').where('id', '=', a.id).executeTakeFirstOrThrow();
      accounts[k] = { ...a, accountId: a.id, acme: row.acme_id };
      headers[k] = { authorization: `Bearer ${(await id.tokens.issue({ accountId: a.id, kind: 'pat', email: a.email, label: 'test' })).token}` };
    }
    // The customer's zone: tunn.example.test has both records of the owner; two.example.test too
    // (a second domain); bare.example.test has none; mallory's claim target has the owner's.
    zone = new Zone('example.test');
    for (const d of ['tunn.example.test', 'two.example.test', 'claimed.example.test']) {
      zone.add({ name: `*.${d}`, type: 'CNAME', value: RELAY });
      zone.add({ name: `_acme-challenge.${d}`, type: 'CNAME', value: `${accounts.owner!.acme}._acme.${RELAY}` });
    }
    zone.add({ name: '*.wrong.example.test', type: 'CNAME', value: 'elsewhere.test' });
    zone.add({ name: '_acme-challenge.wrong.example.test', type: 'TXT', value: 'hello' });
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [zone] });
    manager = new CertManager({ ...relayCertBackends(id.store, new SecretBox(randomBytes(32))), issuer: new SelfSignedIssuer(await createCa('api test CA')), decide: relayDecisionFunc({ relayDomain: RELAY, customDomain: customDomainDecider(id.store) }) });
    const opts = { relayDomain: RELAY, resolver: world.resolver, strict: false, manager, certEventToken: 'cert-event-secret-0123456789' };
    app = new Hono<ApiEnv>().route('/v1/domains', domainRoutes(id, opts)).route('/', certRoutes(id, opts));
    app.onError((err, c) => c.json(errorBody(err), statusOf(err)));
  });
  after(async () => {
    await world?.close();
    await id?.close();
  });

  it('add prints the two records of the seed and verifies when DNS has them', async () => {
    const r = await call('owner', 'POST', '/v1/domains', { domain: 'Tunn.Example.Test' });
    assert.equal(r.status, 201);
    assert.deepEqual(
      r.body.records.map((x: { name: string; type: string; value: string }) => `${x.name} ${x.type} ${x.value}`),
      [`*.tunn.example.test CNAME ${RELAY}`, `_acme-challenge.tunn.example.test CNAME ${accounts.owner!.acme}._acme.${RELAY}`],
    );
    assert.equal(r.body.verification.verified, true);
    assert.equal(r.body.domain.status, 'verified');
    assert.equal(r.body.domain.owner, 'owner@example.test');
    // Adding again is idempotent for the owner.
    const again = await call('owner', 'POST', '/v1/domains', { domain: 'tunn.example.test' });
    assert.equal(again.status, 200);
    assert.equal(again.body.created, false);
  });

  it('records missing or wrong: the exact mismatch, and the domain is not usable', async () => {
    const bare = await call('owner', 'POST', '/v1/domains', { domain: 'bare.example.test' });
    assert.equal(bare.status, 201);
    assert.equal(bare.body.verification.verified, false);
    assert.equal(bare.body.domain.status, 'pending_verification');
    assert.match(bare.body.verification.problems.join('\n'), /_acme-challenge\.bare\.example\.test has no record yet: create CNAME .*\._acme\.relay\.test/);
    const wrong = await call('owner', 'POST', '/v1/domains', { domain: 'wrong.example.test' });
    const problems = wrong.body.verification.problems.join('\n');
    assert.match(problems, /\*\.wrong\.example\.test is a CNAME to elsewhere\.test instead of relay\.test/);
    assert.match(problems, /_acme-challenge\.wrong\.example\.test has TXT "hello" instead of CNAME/);
    await assert.rejects(resolveTunnelDomain(id.store, RELAY, accounts.owner!, 'bare.example.test'), (e) => isTunnError(e, 'FORBIDDEN') && /not verified yet/.test(e.message));
    const v = await call('owner', 'POST', '/v1/domains/bare.example.test/verify');
    assert.equal(v.status, 200);
    assert.equal(v.body.verified, false);
    assert.equal(v.body.records.length, 2);
  });

  it('refuses bad input with a code and what to do', async () => {
    const reserved = await call('owner', 'POST', '/v1/domains', { domain: 'team.relay.test' });
    assert.equal(reserved.status, 400);
    assert.equal(reserved.body.error.code, 'NAME_RESERVED');
    const url = await call('owner', 'POST', '/v1/domains', { domain: 'https://x.example.test/' });
    assert.equal(url.status, 400);
    assert.equal((await call('owner', 'POST', '/v1/domains', {})).body.error.code, 'INVALID_INPUT');
    assert.equal((await call(undefined, 'GET', '/v1/domains')).status, 401);
    const taken = await call('mallory', 'POST', '/v1/domains', { domain: 'tunn.example.test' });
    assert.equal(taken.status, 409);
    assert.match(taken.body.error.message, /already registered to another account/);
  });

  it('an unverified claim does not lock a domain away from whoever controls its DNS', async () => {
    const squat = await call('mallory', 'POST', '/v1/domains', { domain: 'claimed.example.test' });
    assert.equal(squat.status, 201);
    assert.equal(squat.body.verification.verified, false);
    const real = await call('owner', 'POST', '/v1/domains', { domain: 'claimed.example.test' });
    assert.equal(real.status, 201);
    assert.equal(real.body.domain.status, 'verified');
    assert.equal((await domainByName(id.store, 'claimed.example.test'))!.accountId, accounts.owner!.id);
    // The other way round: a pending claim by someone who cannot prove control is a 409 with the records.
    const bare = await call('mallory', 'POST', '/v1/domains', { domain: 'bare.example.test' });
    assert.equal(bare.status, 409);
    assert.match(bare.body.error.message, new RegExp(`_acme-challenge\\.bare\\.example\\.test CNAME ${accounts.mallory!.acme}\\._acme\\.relay\\.test`));
    assert.equal((await call('owner', 'DELETE', '/v1/domains/claimed.example.test')).status, 200);
  });

  it('sharing: shared users see and use the domain, only the owner manages it', async () => {
    const s = await call('owner', 'POST', '/v1/domains/tunn.example.test/shares', { with: ['@corp.test', 'carol@else.test'] });
    assert.equal(s.status, 200);
    assert.deepEqual(s.body.domain.shares, ['@corp.test', 'carol@else.test']);
    const bobList = await call('bob', 'GET', '/v1/domains');
    assert.deepEqual(bobList.body.domains.map((d: { domain: string; role: string }) => `${d.domain}:${d.role}`), ['tunn.example.test:shared']);
    assert.equal(bobList.body.domains[0].records, undefined);
    const show = await call('bob', 'GET', '/v1/domains/tunn.example.test');
    assert.equal(show.body.domain.owner, 'owner@example.test');
    for (const [m, p] of [['POST', '/v1/domains/tunn.example.test/verify'], ['DELETE', '/v1/domains/tunn.example.test'], ['DELETE', '/v1/domains/tunn.example.test/shares/carol@else.test']] as const) {
      const r = await call('bob', m, p);
      assert.equal(r.status, 403, p);
      assert.match(r.body.error.message, /only the owner can/);
    }
    assert.equal((await call('bob', 'POST', '/v1/domains/tunn.example.test/shares', { with: ['bob@corp.test'] })).status, 403);
    assert.equal((await call('mallory', 'GET', '/v1/domains/tunn.example.test')).status, 404);
    assert.equal((await call('owner', 'POST', '/v1/domains/tunn.example.test/shares', { with: ['not an email'] })).status, 400);
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.bob!, 'tunn.example.test'), 'tunn.example.test');
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.bob!, undefined), 'tunn.example.test');
    await assert.rejects(resolveTunnelDomain(id.store, RELAY, accounts.mallory!, 'tunn.example.test'), (e) => isTunnError(e, 'NOT_FOUND'));
    const un = await call('owner', 'DELETE', '/v1/domains/tunn.example.test/shares/carol@else.test');
    assert.deepEqual(un.body.domain.shares, ['@corp.test']);
    assert.equal((await call('owner', 'DELETE', '/v1/domains/tunn.example.test/shares/carol@else.test')).status, 404);
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.carol!, undefined), RELAY);
  });

  it('validate (the console, as typed): the same refusals as add and share, word for word, and nothing changes', async () => {
    const same = async (who: string, body: { domain: string; share?: string[] }, real: () => ReturnType<typeof call>) => {
      const v = await call(who, 'POST', '/v1/domains/validate', body);
      const r = await real();
      assert.ok(r.status >= 400, JSON.stringify(r.body));
      assert.deepEqual({ status: v.status, body: v.body }, { status: r.status, body: r.body }, JSON.stringify(body));
      return v.body.error as { code: string; message: string };
    };
    // Add: inside the relay's zone, malformed, another account's verified domain, another's unverified claim.
    assert.equal((await same('owner', { domain: 'team.relay.test' }, () => call('owner', 'POST', '/v1/domains', { domain: 'team.relay.test' }))).code, 'NAME_RESERVED');
    assert.match((await same('owner', { domain: 'bad_name..test' }, () => call('owner', 'POST', '/v1/domains', { domain: 'bad_name..test' }))).message, /is not a valid domain name/);
    assert.match((await same('mallory', { domain: 'tunn.example.test' }, () => call('mallory', 'POST', '/v1/domains', { domain: 'tunn.example.test' }))).message, /already registered to another account/);
    // (bare.example.test: the owner's claim, its records not in DNS)
    assert.equal((await domainByName(id.store, 'bare.example.test'))?.verifiedAt, null);
    assert.match((await same('carol', { domain: 'bare.example.test' }, () => call('carol', 'POST', '/v1/domains', { domain: 'bare.example.test' }))).message, /waiting for DNS verification by another account/);
    // Share: a bad entry, an empty list, someone else's domain.
    const shares = (who: string, list: string[]) => () => call(who, 'POST', '/v1/domains/tunn.example.test/shares', { with: list });
    assert.match((await same('owner', { domain: 'tunn.example.test', share: ['bob@', 'x@y.test'] }, shares('owner', ['bob@', 'x@y.test']))).message, /"bob@" is neither an email/);
    assert.match((await same('owner', { domain: 'tunn.example.test', share: [' '] }, shares('owner', [' ']))).message, /name who to share with/);
    assert.equal((await same('bob', { domain: 'tunn.example.test', share: ['@corp.test'] }, shares('bob', ['@corp.test']))).code, 'FORBIDDEN');
    // Acceptable input: ok, normalised, and nothing was added or shared.
    const ok = await call('owner', 'POST', '/v1/domains/validate', { domain: 'New.Example.Test' });
    assert.deepEqual(ok, { status: 200, body: { ok: true, domain: 'new.example.test' } });
    assert.equal(await domainByName(id.store, 'new.example.test'), undefined);
    const before = (await domainByName(id.store, 'tunn.example.test'))!.shares;
    const okShare = await call('owner', 'POST', '/v1/domains/validate', { domain: 'tunn.example.test', share: ['@Team.Test, Zed@X.test'] });
    assert.deepEqual(okShare.body, { ok: true, domain: 'tunn.example.test', share: ['@team.test', 'zed@x.test'] });
    assert.deepEqual((await domainByName(id.store, 'tunn.example.test'))!.shares, before);
    assert.equal((await call(undefined, 'POST', '/v1/domains/validate', { domain: 'new.example.test' })).status, 401);
  });

  it('domain resolution: none → the relay, one → it, several → an error listing them', async () => {
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.mallory!, undefined), RELAY);
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.owner!, undefined), 'tunn.example.test');
    assert.equal((await call('owner', 'POST', '/v1/domains', { domain: 'two.example.test' })).body.domain.status, 'verified');
    await assert.rejects(resolveTunnelDomain(id.store, RELAY, accounts.owner!, undefined), (e) => isTunnError(e, 'INVALID_INPUT') && /tunn\.example\.test, two\.example\.test/.test(e.message) && /-d/.test(e.message));
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.owner!, 'two.example.test'), 'two.example.test');
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.owner!, RELAY), RELAY);
    assert.equal((await call('owner', 'DELETE', '/v1/domains/two.example.test')).status, 200);
  });

  it('certificates: issued after verification, listed with state for those who may see them', async () => {
    await manager.getSecureContext('grafana.tunn.example.test');
    const certs = await call('owner', 'GET', '/v1/certs');
    const c = certs.body.certs.find((x: { name: string }) => x.name === '*.tunn.example.test');
    assert.ok(c, JSON.stringify(certs.body));
    assert.equal(c.status, 'issued');
    assert.equal(c.issuer, 'self-signed');
    assert.equal(c.lastError, null);
    assert.ok(Date.parse(c.notAfter) > Date.now());
    assert.equal((await call('mallory', 'GET', '/v1/certs')).body.certs.some((x: { name: string }) => x.name === '*.tunn.example.test'), false);
    // GET /v1/certificates (the console): the lifecycle state, issuer, expiry and where TLS ends,
    // for the owner and those the domain is shared with; nobody else sees the name.
    type View = { name: string; state: string; issuer: string | null; access: string; terminatedAt: string; domain: string | null; owner: string | null; notAfter: string | null };
    const list = async (who: string) => (await call(who, 'GET', '/v1/certificates')).body.certificates as View[];
    const wc = (await list('owner')).find((x) => x.name === '*.tunn.example.test')!;
    assert.deepEqual([wc.state, wc.issuer, wc.access, wc.terminatedAt, wc.domain, wc.owner], ['issued', 'self-signed', 'owner', 'relay', 'tunn.example.test', 'owner@example.test']);
    assert.ok(Date.parse(wc.notAfter!) > Date.now());
    assert.deepEqual((await list('bob')).filter((x) => x.domain === 'tunn.example.test').map((x) => [x.name, x.access, x.state]), [['*.tunn.example.test', 'shared', 'issued']]);
    assert.equal((await list('mallory')).some((x) => x.domain === 'tunn.example.test'), false);
    // A domain with no certificate yet is listed with where it is in the lifecycle.
    const pending = (await list('owner')).filter((x) => x.issuer === null);
    assert.ok(pending.length > 0 && pending.every((x) => ['pending_issue', 'pending_route', 'tls_error', 'passthrough_unverified'].includes(x.state)), JSON.stringify(pending));
    const show = await call('owner', 'GET', '/v1/domains/tunn.example.test');
    assert.equal(show.body.domain.tls.status, 'issued');
    assert.ok(show.body.domain.tls.certificateRef);
    assert.ok(show.body.events.some((e: { kind: string }) => e.kind === 'issued'));
  });

  it('a verified domain whose records went away is marked pending_route with the mismatch', async () => {
    zone.remove('*.tunn.example.test', 'CNAME', RELAY);
    const v = await call('owner', 'POST', '/v1/domains/tunn.example.test/verify');
    assert.equal(v.body.verified, false);
    const show = await call('owner', 'GET', '/v1/domains/tunn.example.test');
    assert.equal(show.body.domain.tls.status, 'pending_route');
    assert.match(show.body.domain.tls.lastError, /\*\.tunn\.example\.test has no record yet/);
    zone.add({ name: '*.tunn.example.test', type: 'CNAME', value: RELAY });
    assert.equal((await call('owner', 'POST', '/v1/domains/tunn.example.test/verify')).body.verified, true);
    assert.equal((await call('owner', 'GET', '/v1/domains/tunn.example.test')).body.domain.tls.status, 'issued');
  });

  // Security property (issue 9, seed 001 "cert-source provenance validation"): a cert event is
  // accepted only when signed with the token (HMAC over timestamp and body), within 5 minutes,
  // once; the token itself is never sent.
  it('cert-events: signature required, body checked, state recorded, replay and stale refused', async () => {
    const TOKEN = 'cert-event-secret-0123456789';
    const post = async (raw: string, headers: Record<string, string>) => {
      const res = await app.request('/v1/domains/cert-events', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const signed = (body: unknown, opts: { token?: string; at?: number } = {}) => {
      const raw = JSON.stringify(body);
      return { raw, headers: certEventHeaders(opts.token ?? TOKEN, raw, opts.at ?? id.clock.now()) };
    };
    const unsigned = await post(JSON.stringify({ domain: 'tunn.example.test', status: 'issued' }), {});
    assert.equal(unsigned.status, 401);
    assert.match(unsigned.body.error.message, /^unsigned cert event: sign each request: x-cert-event-timestamp/);
    // The old header that carried the token itself is refused even with the right token.
    const legacy = await post(JSON.stringify({ domain: 'tunn.example.test', status: 'issued' }), { 'x-cert-event-token': TOKEN });
    assert.equal(legacy.status, 401);
    assert.match(legacy.body.error.message, /x-cert-event-token is not accepted: it sends the secret itself/);
    const wrongKey = signed({ domain: 'tunn.example.test', status: 'issued' }, { token: 'not-the-cert-event-token' });
    const wrong = await post(wrongKey.raw, wrongKey.headers);
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /x-cert-event-signature does not match/);
    // A body changed after signing does not match either.
    const tampered = signed({ domain: 'tunn.example.test', status: 'issued' });
    assert.equal((await post(tampered.raw.replace('issued', 'expiring'), tampered.headers)).status, 401);
    const stale = signed({ domain: 'tunn.example.test', status: 'issued' }, { at: id.clock.now() - 6 * 60_000 });
    const old = await post(stale.raw, stale.headers);
    assert.equal(old.status, 401);
    assert.match(old.body.error.message, /x-cert-event-timestamp is 36\d s old \(allowed: 300 s\)/);
    const bad = signed({ domain: 'tunn.example.test', status: 'nope' });
    const badRes = await post(bad.raw, bad.headers);
    assert.equal(badRes.status, 400);
    assert.match(badRes.body.error.message, /status: one of/);
    const good = signed({ domain: 'tunn.example.test', status: 'tls_error', error: 'external manager: CA said no' });
    assert.equal((await post(good.raw, good.headers)).status, 202);
    const again = await post(good.raw, good.headers);
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /already received/);
    const show = await call('owner', 'GET', '/v1/domains/tunn.example.test');
    assert.equal(show.body.domain.tls.status, 'tls_error');
    assert.equal(show.body.domain.tls.lastError, 'external manager: CA said no');
    const huge = signed({ domain: 'tunn.example.test', status: 'issued', message: 'x'.repeat(70 * 1024) });
    assert.equal((await post(huge.raw, huge.headers)).status, 413);
  });

  it('delete: the owner removes the domain and its certificate', async () => {
    const d = await call('owner', 'DELETE', '/v1/domains/tunn.example.test');
    assert.equal(d.status, 200);
    assert.equal((await call('owner', 'GET', '/v1/domains/tunn.example.test')).status, 404);
    assert.equal(await manager.storage.load('*.tunn.example.test'), undefined);
    assert.equal(await resolveTunnelDomain(id.store, RELAY, accounts.bob!, undefined), RELAY);
  });
});
