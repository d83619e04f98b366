import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configureAcmeHttp } from '../../acme/http-settings.ts';
import { agentDns01 } from '../../dns/agent-dns01.ts';
import { ManualClock } from '../../lib/clock.ts';
import { SecretBox } from '../../lib/secret-box.ts';
import { startDnsWorld, type DnsWorld } from '../../../test/support/dns-world.ts';
import { startPebble, type Pebble } from '../../../test/support/pebble.ts';
import { AgentAcme, renewalDueAt } from './acme-agent.ts';
import { AgentTls, type TlsState } from './agent-tls.ts';
import { AgentCertStore } from './cert-store.ts';
import { TlsContexts } from './contexts.ts';
import { RequestedDns01Solver } from './dns01-requester.ts';
import { spkiPin } from './pin.ts';
import { TlsTerminator } from './terminator.ts';
import { leaf, passthrough, rawRequest, testCa, visitor } from './testing.ts';

const RELAY = 'relay.test';
const NAME = `grafana.${RELAY}`;
const ok = { request: (_q: unknown, res: { end(s: string): void }) => res.end('ok'), upgrade: (_q: unknown, s: { destroy(): void }) => s.destroy() };

describe('fallback and take-over: which end terminates each name', () => {
  it('serves --tls-cert files for the names they cover, and says why not for the others', async () => {
    const ca = await testCa();
    const files = await leaf(ca, [NAME]);
    const events: TlsState[] = [];
    const tls = new AgentTls({ names: [NAME, 'other.relay.test'], contexts: new TlsContexts(), source: { kind: 'files', ...files }, clock: new ManualClock(), onState: (s) => events.push(s) });
    await tls.start();
    assert.deepEqual(events.map((e) => [e.name, e.terminatedAt]), [[NAME, 'agent'], ['other.relay.test', 'relay']]);
    assert.equal(events[0]!.pin, spkiPin(files.chainPem));
    assert.match(events[1]!.reason!, /the certificate of --tls-cert is for grafana\.relay\.test, not other\.relay\.test/);
    await tls.tick();
    assert.equal(events.length, 2, 'no event without a change');
  });

  describe('against Pebble', () => {
    let world: DnsWorld;
    let pebble: Pebble;
    before(async () => {
      configureAcmeHttp({ retry: { maxAttempts: 0, defaultDelaySeconds: 0.05 } });
      world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [] });
      pebble = await startPebble({ dnsServer: world.resolver, validitySeconds: 3 * 86400 });
    });
    after(async () => {
      await pebble?.stop();
      await world?.close();
    });

    it('CA down at start → the relay terminates with the reason; CA back → the agent takes over; renewal is reported', async () => {
      const clock = new ManualClock();
      const contexts = new TlsContexts();
      const acme = new AgentAcme({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, store: new AgentCertStore(mkdtempSync(join(tmpdir(), 'tunn-agent-tls-')), new SecretBox(randomBytes(32))), solvers: [new RequestedDns01Solver(agentDns01(world.relayZone, (h) => h === NAME))], clock, backoff: { minMs: 50, maxMs: 500 } });
      const events: TlsState[] = [];
      const tls = new AgentTls({ names: [NAME], contexts, source: { kind: 'acme', acme }, clock, retryMs: 30_000, onState: (s) => events.push(s) });
      const t = new TlsTerminator({ contexts, handler: ok as never });
      const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
      after(() => (t.close(), pt.close()));
      await pebble.stop();
      try {
        await tls.start();
      } finally {
        await pebble.start();
      }
      assert.equal(events.length, 1);
      assert.equal(events[0]!.terminatedAt, 'relay');
      assert.match(events[0]!.reason!, /cannot reach the ACME server/);
      // Nothing is served at the agent meanwhile: the relay terminates (phase 2 routes there).
      await assert.rejects(visitor(pt.port, { servername: NAME, ca: pebble.rootPem }));
      await tls.tick();
      assert.equal(events.length, 1, 'not retried before retryMs');
      clock.advance(30_000);
      await tls.tick();
      assert.equal(events.length, 2);
      assert.equal(events[1]!.terminatedAt, 'agent');
      assert.equal(events[1]!.reason, undefined);
      const s = await visitor(pt.port, { servername: NAME, ca: pebble.rootPem });
      assert.equal(spkiPin(s.getPeerX509Certificate()!.toString()), events[1]!.pin);
      clock.set(renewalDueAt({ notBefore: events[1]!.notAfter! - 3 * 86400_000, notAfter: events[1]!.notAfter! }) + 1000);
      await tls.tick();
      assert.equal(events.length, 3, 'a renewal is a change');
      assert.notEqual(events[2]!.pin, events[1]!.pin, 'a new key (no --keep-key)');
      assert.equal((await rawRequest(s, `GET / HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`)).status, 200, 'the connection from before the renewal is kept');
      s.destroy();
    });

    it('ticks never overlap: a renewal check asked for during one (a clock change while the timer runs) does not order the same certificate twice', async () => {
      const clock = new ManualClock();
      const store = new AgentCertStore(mkdtempSync(join(tmpdir(), 'tunn-agent-tls-')), new SecretBox(randomBytes(32)));
      const acme = new AgentAcme({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, store, solvers: [new RequestedDns01Solver(agentDns01(world.relayZone, (h) => h === NAME))], clock, backoff: { minMs: 50, maxMs: 500 } });
      let orders = 0;
      const obtain = acme.obtain.bind(acme);
      acme.obtain = (n: string) => (orders++, obtain(n));
      const events: TlsState[] = [];
      const tls = new AgentTls({ names: [NAME], contexts: new TlsContexts(), source: { kind: 'acme', acme }, clock, onState: (s) => events.push(s) });
      await tls.start();
      assert.equal(orders, 1);
      // Just past the first certificate's renewal time; the renewed one (issued over a second later) is not due yet.
      await sleep(1500);
      clock.set(renewalDueAt(store.load(NAME)!) + 1);
      await Promise.all([tls.tick(), tls.tick(), tls.tick()]);
      assert.equal(orders, 2, 'one renewal order for three overlapping checks');
      assert.equal(events.length, 2);
    });
  });
});
