import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls, { type SecureContext } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { openStore, type Dialect, type Store } from '../store/store.ts';
import { HTTP01_PREFIX, Http01Solver } from './http01.ts';
import { SharedChallenges } from './shared-challenges.ts';
import { ACME_TLS_ALPN, TlsAlpn01Solver } from './tls-alpn01.ts';

// Issue 14: in a cluster the CA connects to whichever relay DNS gives it. HTTP-01 and TLS-ALPN-01
// challenges one relay presents are answered by every relay, from the shared database: two
// relays' solvers on one real database (SQLite and PostgreSQL), with an injected clock.

const DIALECTS: Dialect[] = ['sqlite', 'postgres'];
const T0 = Date.parse('2026-03-01T12:00:00Z');
const logger = createLogger({ json: true, level: 'silent' });
const TOKEN = 'tok_EN-0123456789abcdefghijklmnopqrstuvwxyz';
const KEY_AUTH = `${TOKEN}.thumbprint-of-the-account-key`;

const authz = (name: string) => ({ identifier: { type: 'dns', value: name } });
const challenge = (type: string, token = TOKEN) => ({ type, token });

/** DER of the OID id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 (RFC 8737 6.1). */
const ACME_IDENTIFIER_OID = Buffer.from([0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f]);

/** The certificate served with ALPN acme-tls/1: the negotiated ALPN, its SAN, and the DER after the acmeIdentifier OID. */
async function servedAlpnCertificate(ctx: SecureContext, servername: string): Promise<{ alpn: string | false | null; acmeIdentifier?: Buffer; san?: string }> {
  const server = tls.createServer({ SNICallback: (_name, cb) => cb(null, ctx), ALPNProtocols: [ACME_TLS_ALPN] }, (s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername, ALPNProtocols: [ACME_TLS_ALPN], rejectUnauthorized: false });
  try {
    await once(c, 'secureConnect');
    const raw = c.getPeerCertificate().raw;
    const at = raw.indexOf(ACME_IDENTIFIER_OID);
    return { alpn: c.alpnProtocol, acmeIdentifier: at < 0 ? undefined : raw.subarray(at + ACME_IDENTIFIER_OID.length, at + ACME_IDENTIFIER_OID.length + 39), san: new X509Certificate(raw).subjectAltName };
  } finally {
    c.destroy();
    server.close();
  }
}

for (const dialect of DIALECTS) {
  describe(`shared ACME HTTP-01 / TLS-ALPN-01 challenges on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-shared-challenges-${dialect}-`));
    let pg: Postgres | undefined;
    let n = 0;
    const fresh = async (): Promise<Store> => openStore(dialect === 'postgres' ? await pg!.createDatabase() : join(dir, `s${++n}`, 'tunn.db'));
    const rows = async (store: Store) => (await store.db.selectFrom('acme_challenges').select(['type', 'name', 'token']).execute()).length;

    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
    });
    after(async () => {
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("HTTP-01: a token relay A presents is answered by relay B at once (a miss reads the database), for its host only, and goes with cleanup", async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const a = new Http01Solver(new SharedChallenges({ store, clock, logger }));
      const b = new Http01Solver(new SharedChallenges({ store, clock, logger }));
      const path = `${HTTP01_PREFIX}${TOKEN}`;
      try {
        // B reads the (empty) table first: its copy is fresh when A presents.
        assert.equal(await b.respond(path, 'web.tunn.test'), undefined);
        await a.present(authz('Web.Tunn.Test'), challenge('http-01'), KEY_AUTH);
        assert.equal(await b.respond(path, 'web.tunn.test'), KEY_AUTH, "B answers A's token without waiting for a periodic copy");
        assert.equal(await b.respond(`${path}?x=1`, 'web.tunn.test'), KEY_AUTH);
        assert.equal(a.respond(path, 'web.tunn.test'), KEY_AUTH, 'the presenting relay answers from memory');
        // Security: a token is answered only for the host it was issued for (not any name pointed at the relays).
        assert.equal(await b.respond(path, 'evil.example.test'), undefined);
        assert.equal(a.respond(path, 'evil.example.test'), undefined);

        await a.cleanup(authz('web.tunn.test'), challenge('http-01'));
        assert.equal(await rows(store), 0, 'cleanup removes the row');
        clock.advance(1001); // past B's cache
        assert.equal(await b.respond(path, 'web.tunn.test'), undefined, 'a cleaned-up token is no longer answered');
      } finally {
        await store.close();
      }
    });

    it('HTTP-01: only exact tokens: no listing, no traversal, no escapes, and none of those reach the database', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const a = new Http01Solver(new SharedChallenges({ store, clock, logger }));
      const b = new Http01Solver(new SharedChallenges({ store, clock, logger }));
      try {
        await a.present(authz('web.tunn.test'), challenge('http-01'), KEY_AUTH);
        // Security: each of these comes back synchronously undefined (routed as usual), so an
        // attacker cannot list tokens, walk paths, or make a relay query the database with them.
        for (const p of [HTTP01_PREFIX, `${HTTP01_PREFIX}../${TOKEN}`, `${HTTP01_PREFIX}${TOKEN}/`, `${HTTP01_PREFIX}${TOKEN}/..`, `${HTTP01_PREFIX}%2e%2e`, `${HTTP01_PREFIX}${TOKEN.slice(0, 5)}*`, `${HTTP01_PREFIX}${'a'.repeat(300)}`, '/.well-known/acme-challenge', `/x${HTTP01_PREFIX}${TOKEN}`]) {
          assert.equal(b.respond(p, 'web.tunn.test'), undefined, p);
          assert.equal(a.respond(p, 'web.tunn.test'), undefined, p);
        }
        // A well-formed token nobody presented: read once, then not answered.
        assert.equal(await b.respond(`${HTTP01_PREFIX}${TOKEN.slice(1)}`, 'web.tunn.test'), undefined);
        assert.equal(await b.respond(`${HTTP01_PREFIX}${TOKEN.toUpperCase()}`, 'web.tunn.test'), undefined, 'tokens compare exactly (case-sensitive)');
      } finally {
        await store.close();
      }
    });

    it("TLS-ALPN-01: relay B answers a name relay A presents with a certificate it builds (acmeIdentifier = SHA-256 of the key authorization), only for that name", async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const a = new TlsAlpn01Solver(new SharedChallenges({ store, clock, logger }));
      const b = new TlsAlpn01Solver(new SharedChallenges({ store, clock, logger }));
      try {
        assert.equal(await b.answer('alpn.tunn.test'), undefined);
        assert.equal(b.has('alpn.tunn.test'), false);
        await a.present(authz('alpn.tunn.test'), challenge('tls-alpn-01'), KEY_AUTH);
        const ctx = await b.answer('ALPN.tunn.test.');
        assert.ok(ctx, "B answers A's challenge at once");
        assert.equal(b.has('alpn.tunn.test'), true, 'known to the edge after the read');
        assert.equal(b.secureContext('alpn.tunn.test'), undefined, 'not presented by B itself');
        const served = await servedAlpnCertificate(ctx, 'alpn.tunn.test');
        assert.equal(served.alpn, ACME_TLS_ALPN);
        assert.equal(served.san, 'DNS:alpn.tunn.test');
        // RFC 8737 3: critical, and the extension's value (an OCTET STRING) holds the OCTET STRING SHA-256(key authorization).
        const digest = createHash('sha256').update(KEY_AUTH).digest();
        assert.deepEqual(served.acmeIdentifier, Buffer.concat([Buffer.from([0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20]), digest]));
        assert.equal(await b.answer('alpn.tunn.test'), ctx, 'built once per challenge');
        // Security: no answer for a name without a pending challenge (even a sibling of one).
        assert.equal(await b.answer('other.tunn.test'), undefined);
        assert.equal(await b.answer('tunn.test'), undefined);

        await a.cleanup(authz('alpn.tunn.test'), challenge('tls-alpn-01'));
        clock.advance(1001);
        assert.equal(await b.answer('alpn.tunn.test'), undefined, 'a cleaned-up challenge is no longer answered');
        assert.equal(b.has('alpn.tunn.test'), false);
        // cleanup removes only its own token's row.
        await a.present(authz('alpn.tunn.test'), challenge('tls-alpn-01', 'other-token'), 'other-token.tp');
        await a.cleanup(authz('alpn.tunn.test'), challenge('tls-alpn-01'));
        assert.equal(await rows(store), 1);
      } finally {
        await store.close();
      }
    });

    it("a crashed relay's challenges expire: not answered after the TTL, and swept by the next present", async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const crashed = new Http01Solver(new SharedChallenges({ store, clock, logger, ttlMs: 60_000 }));
      const b = new SharedChallenges({ store, clock, logger, ttlMs: 60_000 });
      const other = new Http01Solver(b);
      try {
        await crashed.present(authz('web.tunn.test'), challenge('http-01'), KEY_AUTH);
        assert.equal(await other.respond(`${HTTP01_PREFIX}${TOKEN}`, 'web.tunn.test'), KEY_AUTH);
        clock.advance(60_001);
        assert.equal(await other.respond(`${HTTP01_PREFIX}${TOKEN}`, 'web.tunn.test'), undefined, 'an expired row is not answered');
        assert.equal(await rows(store), 1, 'still in the table until a sweep');
        await b.present({ type: 'tls-alpn-01', name: 'x.tunn.test', token: 'fresh', keyAuthorization: 'fresh.tp' });
        assert.deepEqual((await store.db.selectFrom('acme_challenges').select('token').execute()).map((r) => r.token), ['fresh'], 'the next present swept it');
      } finally {
        await store.close();
      }
    });

    it('the database unreachable: present says what failed and what to do; lookups answer from the last read and log it once', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const lines: Record<string, unknown>[] = [];
      const log = createLogger({ json: true, destination: { write: (l: string) => (lines.push(JSON.parse(l) as Record<string, unknown>), true) } as unknown as NodeJS.WritableStream });
      const a = new Http01Solver(new SharedChallenges({ store, clock, logger }));
      const b = new Http01Solver(new SharedChallenges({ store, clock, logger: log }));
      const path = `${HTTP01_PREFIX}${TOKEN}`;
      await a.present(authz('web.tunn.test'), challenge('http-01'), KEY_AUTH);
      assert.equal(await b.respond(path, 'web.tunn.test'), KEY_AUTH);
      await store.close();
      await assert.rejects(a.present(authz('x.tunn.test'), challenge('http-01', 'other'), 'other.tp'), (e) => isTunnError(e, 'UNAVAILABLE') && /cannot write the ACME http-01 challenge for x\.tunn\.test to the database the relays share .*: the order fails and is retried; check that this relay reaches its --store database/.test(e.message));
      clock.advance(5000);
      assert.equal(await b.respond(path, 'web.tunn.test'), KEY_AUTH, 'the last read still answers');
      assert.equal(await b.respond(`${HTTP01_PREFIX}unknown`, 'web.tunn.test'), undefined);
      assert.deepEqual(lines.filter((l) => l.event === 'acme_challenges_stale').length, 1, JSON.stringify(lines));
      assert.match(String(lines.find((l) => l.event === 'acme_challenges_stale')?.msg), /cannot read the shared ACME challenges: answering the last ones read/);
    });

    it('concurrent misses share one read of the table', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const shared = new SharedChallenges({ store, clock, logger });
      const reads: number[] = [];
      const real = store.db.selectFrom.bind(store.db);
      // Count the reads of the table this instance makes.
      (store.db as { selectFrom: unknown }).selectFrom = ((t: 'acme_challenges') => (reads.push(1), real(t))) as never;
      try {
        const got = await Promise.all(Array.from({ length: 20 }, (_, i) => shared.lookup('http-01', `token-${i}`)));
        assert.deepEqual(got, Array(20).fill(undefined));
        assert.ok(reads.length <= 2, `20 concurrent misses read the table ${reads.length} times`);
      } finally {
        await store.close();
      }
    });

    // Guards the database against a flood: every ClientHello offering acme-tls/1 (any SNI) and
    // every request for /.well-known/acme-challenge/<token> (any host) is a miss. Misses one after
    // another, each for a made-up key, must not read the table back to back.
    it('back-to-back misses for made-up keys read the table at most once per 250 ms', async () => {
      const store = await fresh();
      const shared = new SharedChallenges({ store, clock: { now: () => Date.now() }, logger });
      let reads = 0;
      const real = store.db.selectFrom.bind(store.db);
      (store.db as { selectFrom: unknown }).selectFrom = ((t: 'acme_challenges') => (reads++, real(t))) as never;
      try {
        const start = Date.now();
        let misses = 0;
        while (Date.now() - start < 1000) {
          assert.equal(await shared.lookup(misses % 2 ? 'tls-alpn-01' : 'http-01', `flood-${misses}`), undefined);
          misses++;
        }
        const elapsed = Date.now() - start;
        assert.ok(misses >= 4, `only ${misses} misses in ${elapsed} ms`);
        assert.ok(reads <= Math.ceil(elapsed / 250) + 1, `${misses} misses in ${elapsed} ms read the table ${reads} times`);
      } finally {
        await store.close();
      }
    });
  });
}
