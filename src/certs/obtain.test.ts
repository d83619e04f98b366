import { ariCertId } from '../acme/ari.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { startPostgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { storeLocker } from './kysely-locker.ts';
import { KyselyCertStorage } from './kysely-storage.ts';
import { relayDecisionFunc } from './decision.ts';
import { createCa, type KeyAndCert } from './dev-ca.ts';
import { FileLocker } from './file-locker.ts';
import { FileCertStorage } from './file-storage.ts';
import type { CertStateChange } from './hooks.ts';
import type { IssuedCertificate, Issuer } from './issuer.ts';
import { CertManager } from './manager.ts';
import { SelfSignedIssuer } from './self-signed-issuer.ts';

// The manager without the relay's database (an agent that runs ACME itself, DESIGN decision
// 13): certificates in files, orders serialised by lock files, lifecycle changes reported to
// hooks. Two managers on one directory stand for two processes sharing it.

const RELAY = 'agent.test';

/** The dev CA issuer, slow enough for orders to overlap, counting them; fails while `failing` is set. */
class SlowIssuer implements Issuer {
  readonly id = 'slow-test';
  orders = 0;
  failing: string | undefined;
  readonly #inner: SelfSignedIssuer;
  constructor(ca: KeyAndCert) {
    this.#inner = new SelfSignedIssuer(ca);
  }
  async issue(names: string[]): Promise<IssuedCertificate> {
    this.orders++;
    await new Promise((r) => setTimeout(r, 150));
    if (this.failing) throw new Error(this.failing);
    return this.#inner.issue(names);
  }
}

describe('certificate manager on files, with lifecycle hooks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-obtain-'));
  let ca: KeyAndCert;
  before(async () => {
    ca = await createCa('obtain test CA');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const managerOn = (d: string, issuer: Issuer, changes: CertStateChange[], clock = new ManualClock(Date.now())) =>
    new CertManager({
      storage: new FileCertStorage(d),
      locker: new FileLocker(join(d, 'locks'), { pollMs: 10 }),
      issuer,
      clock,
      decide: relayDecisionFunc({ relayDomain: RELAY }),
      lifecycle: [{ onStateChange: (c) => void changes.push(c) }],
      retrySchedule: [60_000],
    });

  // Security property (rate limits, DESIGN decision 15): processes sharing a storage place one
  // order per certificate, not one each; the second takes what the first saved. Files (two
  // agent processes) and PostgreSQL (two relays of a cluster, an advisory lock).
  for (const backend of ['files', 'postgres'] as const) {
    it(`two managers sharing a storage place one order between them, and both serve it (${backend})`, async () => {
      const issuer = new SlowIssuer(ca);
      const [ca1, ca2]: CertStateChange[][] = [[], []];
      let managers: [CertManager, CertManager];
      let close = async (): Promise<void> => {};
      if (backend === 'files') {
        const d = join(dir, 'shared');
        managers = [managerOn(d, issuer, ca1), managerOn(d, issuer, ca2)];
      } else {
        const pg = await startPostgres();
        const url = await pg.createDatabase();
        const stores = [await openStore(url), await openStore(url)];
        const box = new SecretBox(randomBytes(32));
        const on = (s: Store, changes: CertStateChange[]) =>
          new CertManager({ storage: new KyselyCertStorage(s, box), locker: storeLocker(s), issuer, decide: relayDecisionFunc({ relayDomain: RELAY }), lifecycle: [{ onStateChange: (c) => void changes.push(c) }] });
        managers = [on(stores[0]!, ca1), on(stores[1]!, ca2)];
        close = async () => {
          await Promise.all(stores.map((s) => s.close()));
          await pg.stop();
        };
      }
      try {
        const [m1, m2] = managers;
        const [c1, c2] = await Promise.all([m1.getSecureContext(`a.${RELAY}`), m2.getSecureContext(`b.${RELAY}`)]);
        assert.ok(c1 && c2, 'both handshakes get a certificate');
        assert.equal(issuer.orders, 1, 'one order');
        const stored = await m1.storage.list();
        assert.deepEqual(stored.map((c) => c.name), [`*.${RELAY}`]);
        // Exactly one of them issued; the other adopted it without reporting an issuance.
        const issued = [...ca1, ...ca2].filter((c) => c.kind === 'issued');
        assert.equal(issued.length, 1);
        assert.equal(issued[0]!.kind === 'issued' && issued[0]!.cert.id, stored[0]!.id);
      } finally {
        await close();
      }
    });
  }

  it('reports each change in order: obtaining, issued; then failed with the back-off, still serving the last good one', async () => {
    const d = join(dir, 'hooks');
    const issuer = new SlowIssuer(ca);
    const changes: CertStateChange[] = [];
    const clock = new ManualClock(Date.now());
    const m = managerOn(d, issuer, changes, clock);
    assert.ok(await m.getSecureContext(RELAY));
    assert.deepEqual(changes.map((c) => c.kind), ['obtaining', 'issued']);
    const first = (await m.storage.load(`*.${RELAY}`))!;
    assert.deepEqual(changes[1]!.kind === 'issued' && [changes[1]!.renewed, changes[1]!.reason, changes[1]!.cert.id], [false, 'on-demand', first.id]);

    issuer.failing = 'the CA is down';
    clock.set(m.renewAt(first) + 1000);
    await m.maintain();
    const failed = changes.at(-1)!;
    assert.equal(failed.kind, 'failed');
    assert.ok(failed.kind === 'failed');
    assert.equal(failed.error, 'the CA is down');
    assert.equal(failed.failures, 1);
    assert.equal(failed.nextRetryAt, clock.now() + 60_000);
    assert.equal(failed.stillServing?.id, first.id);
    assert.ok(await m.getSecureContext(`x.${RELAY}`), 'the last good certificate is still served');
    const [listed] = await m.list();
    assert.equal(listed?.status, 'tls_error');
    assert.equal(listed?.lastError, 'the CA is down');

    issuer.failing = undefined;
    clock.advance(61_000);
    await m.maintain();
    const renewed = changes.at(-1)!;
    assert.ok(renewed.kind === 'issued' && renewed.renewed && renewed.reason === 'renewal');
    assert.equal((await m.list())[0]?.status, 'issued');
  });

  it('ARI: the renewal of a certificate the CA gave a window for names it in the order (replaces); without a window, nothing', async () => {
    const inner = new SelfSignedIssuer(ca);
    const requests: ({ replaces?: string } | undefined)[] = [];
    let window: { start: number; end: number } | undefined;
    const issuer: Issuer = {
      id: inner.id,
      issue: (names, request) => (requests.push(request), inner.issue(names)),
      // The CA offers a window for the first certificate only (then stops offering ARI).
      renewalHint: async () => (requests.length <= 1 ? window : undefined),
    };
    const clock = new ManualClock(Date.now());
    const m = managerOn(join(dir, 'ari'), issuer, [], clock);
    window = { start: clock.now() + 86_400_000, end: clock.now() + 2 * 86_400_000 };
    assert.ok(await m.getSecureContext(RELAY));
    const first = (await m.storage.load(`*.${RELAY}`))!;
    assert.deepEqual(first.renewalWindow, window);
    assert.deepEqual(requests, [undefined], 'a first order replaces nothing');
    clock.set(m.renewAt(first) + 1000);
    await m.maintain();
    assert.deepEqual(requests.at(-1), { replaces: ariCertId(first.chainPem) });
    // A CA without ARI: no window, no replaces.
    const second = (await m.storage.load(`*.${RELAY}`))!;
    assert.equal(second.renewalWindow, undefined);
    clock.set(m.renewAt(second) + 1000);
    await m.maintain();
    assert.equal(requests.length, 3);
    assert.equal(requests.at(-1), undefined);
  });

  // A stopping relay (or agent) does not hang on another process's order.
  it('stop() ends a wait for a lock held elsewhere, recording no failure', async () => {
    const d = join(dir, 'stop');
    const changes: CertStateChange[] = [];
    const m = managerOn(d, new SlowIssuer(ca), changes);
    const elsewhere = await new FileLocker(join(d, 'locks')).lock(`certificate:*.${RELAY}`);
    try {
      const waiting = m.getSecureContext(`w.${RELAY}`);
      await new Promise((r) => setTimeout(r, 100));
      m.stop();
      assert.equal(await waiting, undefined, 'the handshake is refused');
      assert.deepEqual(changes.map((c) => c.kind), ['obtaining'], 'no failure recorded');
      m.start();
    } finally {
      await elsewhere();
    }
    assert.ok(await m.getSecureContext(`w.${RELAY}`), 'started again: it orders');
  });

  it('a failing hook is logged and changes nothing about the certificate', async () => {
    const d = join(dir, 'failing-hook');
    const issuer = new SlowIssuer(ca);
    const m = new CertManager({
      storage: new FileCertStorage(d),
      issuer,
      decide: relayDecisionFunc({ relayDomain: RELAY }),
      lifecycle: [{ onStateChange: () => Promise.reject(new Error('the database is down')) }],
    });
    assert.ok(await m.getSecureContext(RELAY));
    assert.equal(issuer.orders, 1);
  });
});
