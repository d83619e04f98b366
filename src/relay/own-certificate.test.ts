import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls, { type SecureContext } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createCa, issueLeaf, type KeyAndCert } from '../certs/dev-ca.ts';
import type { ManagedCertificate } from '../certs/managed.ts';
import type { StoredCertificate } from '../certs/storage.ts';
import { systemClock } from '../lib/clock.ts';
import { createLogger } from '../lib/logger.ts';
import { Relay, type CertSource } from './relay.ts';

// The real relay (store, listeners, TLS edge) started with a certificate source whose own
// name has no certificate yet while another name has one: the seam an ACME manager plugs into
// (its Pebble runs are in manager.test.ts and test/e2e/faults-acme.test.ts).

const RELAY = 'relay.test';
const OTHER = 'app.customer.test';

describe("relay start without its own certificate (issue 9, Faults: the relay used to exit)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-own-cert-'));
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ json: true, destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) });
  let ca: KeyAndCert;
  let relay: Relay;
  const contexts = new Map<string, SecureContext>();
  let arrive!: (c: StoredCertificate | undefined) => void;

  /** A handshake on the relay's HTTPS port: the error code, or the served certificate's CN. */
  async function handshake(servername: string, alpn: string): Promise<{ code?: string; subject?: string }> {
    const s = tls.connect({ host: '127.0.0.1', port: relay.info.httpsPort, servername, ca: ca.certPem, ALPNProtocols: [alpn] });
    try {
      await Promise.race([once(s, 'secureConnect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
      return { subject: String(s.getPeerCertificate().subject.CN) };
    } catch (err) {
      return { code: (err as NodeJS.ErrnoException).code };
    } finally {
      s.destroy();
    }
  }
  const leafContext = async (name: string) => {
    const leaf = await issueLeaf(ca, [name]);
    return tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
  };

  before(async () => {
    ca = await createCa('tunn own-certificate test CA');
    contexts.set(OTHER, await leafContext(OTHER));
    const certs: CertSource = {
      contextFor: (name) => contexts.get(name ?? RELAY),
      manage: async (name): Promise<ManagedCertificate> => ({ name, ready: contexts.has(name), arrived: new Promise((r) => (arrive = r)) }),
    };
    relay = new Relay(
      { domain: RELAY, httpsPort: 0, httpPort: 0, listen: '127.0.0.1', dataDir: dir, dev: false, idleTimeoutMs: 60_000, headTimeoutMs: 10_000, maxHeadSize: 32 * 1024 },
      { logger, clock: systemClock },
    );
    await relay.start({ certs });
  });

  after(async () => {
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with its listeners up and the certificate pending, and says so', () => {
    assert.equal(relay.info.certificate, 'pending');
    assert.ok(relay.info.httpsPort > 0 && relay.info.httpPort > 0);
    assert.ok(lines.some((l) => l.event === 'certificate' && l.state === 'pending' && /no certificate for relay\.test yet/.test(String(l.msg))));
  });

  it("fails TLS for its own name only, with an alert (agents and visitors); other names keep working", async () => {
    assert.match((await handshake(RELAY, 'tunn/1')).code ?? '', /ALERT_HANDSHAKE_FAILURE$/, 'agent link');
    assert.match((await handshake(RELAY, 'http/1.1')).code ?? '', /ALERT_HANDSHAKE_FAILURE$/, 'visitor');
    assert.equal((await handshake(OTHER, 'http/1.1')).subject, OTHER);
  });

  it('takes the certificate when it arrives, and announces it', async () => {
    contexts.set(RELAY, await leafContext(RELAY));
    const now = Date.now();
    arrive({ id: 'c1', name: RELAY, names: [RELAY], issuer: 'test', chainPem: '', keyPem: '', notBefore: now, notAfter: now + 86_400_000 } as StoredCertificate);
    const end = Date.now() + 10_000;
    while (!lines.some((l) => l.event === 'certificate' && l.state === 'ready') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(lines.some((l) => l.event === 'certificate' && l.state === 'ready' && /certificate for relay\.test arrived/.test(String(l.msg))));
    assert.equal((await handshake(RELAY, 'tunn/1')).subject, RELAY);
    assert.equal((await handshake(RELAY, 'http/1.1')).subject, RELAY);
  });
});
