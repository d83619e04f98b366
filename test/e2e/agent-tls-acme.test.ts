import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { rawRequest } from '../../src/agent/tls/testing.ts';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import { DatabaseSync } from 'node:sqlite';
import { DnsServer, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { startForwarder, type ZoneRoute } from '../support/dns-forwarder.ts';
import { startPebble, type Pebble } from '../support/pebble.ts';
import { freePort } from '../support/ports.ts';
import { startOrigin, type Origin } from './origin.ts';
import { createToken, startCli, tmpDir, type Proc, type RelayHandle } from './harness.ts';

// TLS that ends at the agent, with certificates from a real Pebble: the relay advertises its
// ACME CA in `welcome` (one relay flag for everyone); the agent gets a certificate for its name
// under the relay's zone by DNS-01, the TXT record published by the relay's own DNS (only for
// the name that agent holds). Pebble down when the agent starts → the relay terminates
// (fallback, said in the `tls` event); Pebble back → the agent takes over for new connections
// while a connection opened during the fallback keeps working. Renewal: the agent's certificate
// clock (TUNN_TEST_CLOCK_FILE, test-only) is moved past 2/3 of the lifetime; new handshakes get
// the new certificate, a kept-alive connection keeps working, the relay learns the new not-after,
// and a restarted agent serves the stored certificate without a new order.

const ZONE = 'agentacme.localhost';
/** A customer's domain, added with --terminate-at agent: no relay certificate covers it. */
const CUSTOM = 'shop.example.test';

describe('e2e: agent-terminated TLS with ACME (Pebble, DNS-01 through the relay)', () => {
  const dir = tmpDir('tunn-e2e-agent-acme-');
  let pebble: Pebble;
  let relay: RelayHandle;
  let origin: Origin;
  let token: string;
  const procs: Proc[] = [];
  const rootFile = join(dir.path, 'pebble-root.pem');
  const customer = new Zone('example.test');
  let customerDns: DnsServer;
  let forwarder: DnsServer;

  before(async () => {
    const [httpsPort, httpPort, dnsPort] = [await freePort(), await freePort(), await freePort()];
    customerDns = new DnsServer({ handler: authoritativeHandler([customer]), authoritative: true });
    await customerDns.listen(0, '127.0.0.1');
    const routes: ZoneRoute[] = [
      { zone: ZONE, server: { host: '127.0.0.1', port: dnsPort } },
      { zone: 'example.test', server: { host: '127.0.0.1', port: customerDns.port } },
    ];
    forwarder = await startForwarder(routes);
    // Pebble's VA asks the relay's own DNS server for the relay's zone (it is authoritative), the customer's for theirs.
    pebble = await startPebble({ dnsServer: `127.0.0.1:${forwarder.port}`, tlsPort: httpsPort, httpPort });
    writeFileSync(join(dir.path, 'pebble-https-ca.pem'), pebble.httpsCaPem);
    writeFileSync(rootFile, pebble.rootPem);
    origin = await startOrigin();
    const dataDir = mkdtempSync(join(dir.path, 'relay-'));
    const proc = startCli([
      'relay', '--domain', ZONE, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', dataDir, '--json',
      '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test',
      '--dns-port', String(dnsPort), '--public-ip', '127.0.0.1', '--dns-resolver', `127.0.0.1:${forwarder.port}`,
    ]);
    procs.push(proc);
    const ready = await proc.waitFor((l) => l.event === 'ready', 60_000);
    if (ready.certificate === 'pending') await proc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 60_000);
    relay = { proc, dataDir, domain: ZONE, httpsPort, httpPort, caPath: rootFile, ca: pebble.rootPem, url: `https://${ZONE}:${httpsPort}`, stop: () => proc.kill() };
    token = await createToken(relay, 'owner@example.test');
  });

  after(async () => {
    for (const p of procs.reverse()) await p.kill();
    await pebble?.stop();
    await origin?.close();
    await forwarder?.close();
    await customerDns?.close();
    dir.remove();
  });

  function agent(name: string, env: NodeJS.ProcessEnv = {}, extra: string[] = ['--terminate-at', 'agent']): Proc {
    const p = startCli([String(origin.port), '-n', name, '--public', ...extra, '--relay', relay.url, '--relay-ca', rootFile, '--json', '--no-inspect'], {
      env: { TUNN_CONFIG_DIR: env.TUNN_CONFIG_DIR ?? mkdtempSync(join(dir.path, `agent-${name}-`)), TUNN_TOKEN: token, TUNN_TEST_AGENT_TLS_RETRY_MS: '1500', ...env },
    });
    procs.push(p);
    return p;
  }

  /** The relay routes `host`'s TLS to its agent (its log line). */
  const routed = (host: string) => relay.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === host);

  async function open(host: string, ca: string): Promise<TLSSocket> {
    const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca, ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    return s;
  }

  it('DNS-01 through the relay’s DNS: Pebble issues the agent’s certificate, and visitors get the key the agent reports', async () => {
    const host = `viadns.${ZONE}`;
    const a = agent('viadns');
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent stdout: ${JSON.stringify(a.lines).slice(-3000)}`);
    });
    await routed(host);
    assert.ok(typeof ev.notAfter === 'string' && Date.parse(ev.notAfter) > Date.now());
    const s = await open(host, pebble.rootPem);
    const cert = s.getPeerX509Certificate()!;
    assert.equal(spkiPin(cert.toString()), ev.pin);
    assert.match(cert.issuer, /Pebble/);
    const r = await rawRequest(s, `GET /via-agent HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`);
    assert.equal(r.status, 200);
    s.destroy();
  });

  it('Pebble down at agent start → relay terminates (reason shown); back → the agent takes over, and a connection opened meanwhile is kept', async () => {
    const host = `late.${ZONE}`;
    const relayRoot = pebble.rootPem;
    await pebble.stop();
    const a = agent('late');
    const fallback = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && typeof l.reason === 'string' && l.reason !== 'agent certificate pending', 60_000);
    assert.ok(String(fallback.reason).length > 0);
    // The relay terminates with its own wildcard for the zone (the covering wildcard the README is honest about).
    const kept = await open(host, relayRoot);
    const first = await rawRequest(kept, `GET /during-fallback HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`);
    assert.equal(first.status, 200);
    await pebble.start();
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000);
    await routed(host);
    // New connections: the agent's certificate.
    const fresh = await open(host, pebble.rootPem);
    assert.equal(spkiPin(fresh.getPeerX509Certificate()!.toString()), ev.pin);
    fresh.destroy();
    // The connection opened during the fallback was not dropped by the take-over.
    const again = await rawRequest(kept, `GET /after-take-over HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`);
    assert.equal(again.status, 200);
    kept.destroy();
  });

  const api = () => ['--relay', relay.url, '--relay-ca', rootFile, '--json'];
  const cli = async (...args: string[]): Promise<Proc> => {
    const p = startCli([...args, ...api()], { env: { TUNN_TOKEN: token } });
    assert.equal(await p.exited, 0, p.stderr.join('\n'));
    return p;
  };

  it('a custom domain added with --terminate-at agent: TLS-ALPN-01 through the relay to the agent (Pebble issues), and the relay has no certificate for it at all', async () => {
    const add = await cli('domain', 'add', CUSTOM, '--terminate-at', 'agent', '--no-wait');
    for (const rec of add.lines[0]!.records as { name: string; type: 'CNAME'; value: string }[]) customer.add(rec);
    await cli('domain', 'verify', CUSTOM);
    const show = startCli(['domain', 'show', CUSTOM, '--relay', relay.url, '--relay-ca', rootFile], { env: { TUNN_TOKEN: token } });
    assert.equal(await show.exited, 0);
    assert.match(show.lines.map((l) => String(l.raw)).join('\n'), /Cert: +none at the relay: TLS ends at the agents .*relay fallback: off/);
    // A tunnel asking for relay termination on it is refused, saying what to do.
    const wrong = agent('plain', {}, ['-d', CUSTOM, '--terminate-at', 'relay']);
    const fatal = await wrong.waitFor((l) => l.event === 'fatal', 30_000);
    assert.match(String(fatal.message), /added with --terminate-at agent .*start the tunnel with --terminate-at agent/);
    const host = `shop-app.${CUSTOM}`;
    customer.add({ name: host, type: 'A', value: '127.0.0.1' });
    // No --terminate-at: on a domain added with --terminate-at agent, TLS ends at the agent by default (issue 12).
    const a = agent('shop-app', {}, ['-d', CUSTOM]);
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent stdout: ${JSON.stringify(a.lines).slice(-3000)}`);
    });
    await routed(host);
    const s = await open(host, pebble.rootPem);
    const cert = s.getPeerX509Certificate()!;
    assert.equal(spkiPin(cert.toString()), ev.pin);
    assert.match(cert.issuer, /Pebble/);
    s.destroy();
    // The relay holds no certificate for the domain or any name under it: not listed, not stored.
    const list = await cli('cert', 'list');
    assert.deepEqual((list.lines[0]!.certs as { name: string }[]).filter((c) => c.name.endsWith(CUSTOM)), []);
    const agentRow = (list.lines[0]!.agent as { name: string; coveredBy: string | null; pin: string }[]).find((r) => r.name === host);
    assert.deepEqual({ coveredBy: agentRow?.coveredBy, pin: agentRow?.pin }, { coveredBy: null, pin: ev.pin });
    const db = new DatabaseSync(join(relay.dataDir, 'tunn.db'), { readOnly: true });
    try {
      assert.deepEqual(db.prepare("SELECT name FROM certificates WHERE name LIKE '%' || ?").all(CUSTOM), []);
    } finally {
      db.close();
    }
  });

  // After the test above (the custom domain is added and verified).
  it('tunn tls --backend tcp on that domain: TLS ends at the agent by default (TLS-ALPN-01, Pebble issues) and the target receives plain TCP', async () => {
    let got = '';
    const target = net.createServer((c) => {
      c.on('error', () => {});
      c.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        c.write(`plain: ${d.toString()}`);
      });
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    after(() => target.close());
    const host = `db.${CUSTOM}`;
    customer.add({ name: host, type: 'A', value: '127.0.0.1' });
    // No --terminate-at: the domain was added with --terminate-at agent, so TLS ends at this agent.
    const configDir = mkdtempSync(join(dir.path, 'agent-db-'));
    const a = startCli(['tls', String((target.address() as AddressInfo).port), '-n', 'db', '-d', CUSTOM, '--backend', 'tcp', '--public', '--relay', relay.url, '--relay-ca', rootFile, '--json'], {
      env: { TUNN_CONFIG_DIR: configDir, TUNN_TOKEN: token, TUNN_TEST_AGENT_TLS_RETRY_MS: '1500', TUNN_DEBUG: '1' },
    });
    procs.push(a);
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent stdout: ${JSON.stringify(a.lines).slice(-3000)}`);
    });
    await routed(host);
    const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: pebble.rootPem });
    await once(s, 'secureConnect');
    const cert = s.getPeerX509Certificate()!;
    assert.equal(spkiPin(cert.toString()), ev.pin);
    assert.match(cert.issuer, /Pebble/);
    s.write('SELECT 1;');
    const [answer] = (await once(s, 'data').catch((err: Error) => {
      throw new Error(`${err.message}\nagent: ${JSON.stringify(a.lines).slice(-2000)} ${a.stderr.join('\n').slice(-2000)}`);
    })) as [Buffer];
    assert.equal(answer.toString(), 'plain: SELECT 1;');
    assert.equal(got, 'SELECT 1;', 'the target read plain bytes');
    s.destroy();
    // `tunn cert pin` on the agent's machine prints the key it serves, as for an HTTP agent-terminated name.
    const pin = startCli(['cert', 'pin', host, '--json'], { env: { TUNN_CONFIG_DIR: configDir } });
    assert.equal(await pin.exited, 0, pin.stderr.join('\n'));
    assert.equal(pin.lines[0]!.pin, `sha256//${String(ev.pin)}`);
  });

  it('tunn tls --backend tcp: Pebble down → the relay terminates as --backend tcp does; back → the agent takes over for new connections, and one opened meanwhile is kept', async () => {
    const target = net.createServer((c) => {
      c.on('error', () => {});
      c.on('data', (d: Buffer) => c.write(`plain: ${d.toString()}`));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    after(() => target.close());
    const host = `latedb.${ZONE}`;
    // The relay's zone wildcard was issued at its start, under the root of that Pebble run (a restarted Pebble has a new root).
    const relayRoot = relay.ca;
    await pebble.stop();
    // -d: the account has a custom domain by now (the tests above), which would be the default.
    const a = startCli(['tls', String((target.address() as AddressInfo).port), '-n', 'latedb', '-d', ZONE, '--backend', 'tcp', '--terminate-at', 'agent', '--public', '--relay', relay.url, '--relay-ca', rootFile, '--json'], {
      env: { TUNN_CONFIG_DIR: mkdtempSync(join(dir.path, 'agent-latedb-')), TUNN_TOKEN: token, TUNN_TEST_AGENT_TLS_RETRY_MS: '1500' },
    });
    procs.push(a);
    assert.equal((await a.waitFor((l) => l.event === 'ready', 30_000)).host, host);
    await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && typeof l.reason === 'string' && l.reason !== 'agent certificate pending', 60_000);
    const say = async (s: TLSSocket, text: string): Promise<string> => {
      s.write(text);
      const [d] = (await once(s, 'data')) as [Buffer];
      return d.toString();
    };
    // Fallback: the relay's own certificate (its zone's wildcard), the target still gets plain TCP.
    const kept = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: relayRoot });
    await once(kept, 'secureConnect');
    assert.equal(await say(kept, 'during fallback'), 'plain: during fallback');
    await pebble.start();
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000);
    await routed(host);
    const fresh = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: pebble.rootPem });
    await once(fresh, 'secureConnect');
    assert.equal(spkiPin(fresh.getPeerX509Certificate()!.toString()), ev.pin, 'new connections: the agent’s certificate');
    assert.equal(await say(fresh, 'after take-over'), 'plain: after take-over');
    fresh.destroy();
    assert.equal(await say(kept, 'still here'), 'plain: still here', 'the connection opened during the fallback was not dropped');
    kept.destroy();
  });

  it('renewal (injected clock): new handshakes get a new certificate (same pin with --keep-key, a new one without), a kept-alive connection keeps working, the relay learns the new not-after, a restart reuses it', async () => {
    const request = async (s: TLSSocket, host: string, path: string) => (await rawRequest(s, `GET ${path} HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`)).status;
    const agentRow = async (host: string) => {
      const list = await cli('cert', 'list');
      return (list.lines[0]!.agent as { name: string; notAfter: string | null; pin: string | null; dns01Remaining: number }[]).find((r) => r.name === host)!;
    };
    const one = async (name: string, keepKey: boolean) => {
      const host = `${name}.${ZONE}`;
      const configDir = mkdtempSync(join(dir.path, `agent-${name}-`));
      const clockFile = join(dir.path, `clock-${name}`);
      writeFileSync(clockFile, '0');
      // No short retry timer here: the renewal check runs when the clock file changes (and every minute).
      const env = { TUNN_CONFIG_DIR: configDir, TUNN_TEST_CLOCK_FILE: clockFile, TUNN_TEST_AGENT_TLS_RETRY_MS: '' };
      // -d: under the relay's zone (DNS-01) even when the account has a custom domain of its own by then.
      const flags = ['-d', ZONE, '--terminate-at', 'agent', ...(keepKey ? ['--keep-key'] : [])];
      const a = agent(name, env, flags);
      const first = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 90_000);
      await routed(host);
      const kept = await open(host, pebble.rootPem);
      const oldSerial = kept.getPeerX509Certificate()!.serialNumber;
      assert.equal(await request(kept, host, '/before-renewal'), 200);
      // Pebble's not-after has 1 s granularity: let a second pass so the renewed one is later.
      await sleep(1200);
      // Pebble issues for 90 days: 61 days on is past 2/3 of the lifetime.
      writeFileSync(clockFile, String(61 * 86_400_000));
      const renewed = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent' && l.notAfter !== first.notAfter && !l.reason, 90_000);
      // The renewed certificate is due again on the moved clock: set it back before the next timer pass.
      writeFileSync(clockFile, '0');
      assert.ok(Date.parse(String(renewed.notAfter)) > Date.parse(String(first.notAfter)));
      if (keepKey) assert.equal(renewed.pin, first.pin, '--keep-key: the pin survives renewal');
      else assert.notEqual(renewed.pin, first.pin, 'without --keep-key a renewal brings a new key');
      // New handshakes: the new certificate, with the pin the agent reports.
      const fresh = await open(host, pebble.rootPem);
      const cert = fresh.getPeerX509Certificate()!;
      assert.notEqual(cert.serialNumber, oldSerial);
      assert.equal(spkiPin(cert.toString()), renewed.pin);
      assert.equal(await request(fresh, host, '/after-renewal-new'), 200);
      fresh.destroy();
      // The connection opened (on the old certificate) before the renewal still works.
      assert.equal(await request(kept, host, '/after-renewal-kept'), 200);
      kept.destroy();
      // The relay shows the new not-after and pin.
      const row = await agentRow(host);
      assert.deepEqual({ notAfter: row.notAfter, pin: row.pin }, { notAfter: new Date(Date.parse(String(renewed.notAfter))).toISOString(), pin: renewed.pin });
      return { host, a, env, flags, serial: cert.serialNumber, renewed };
    };
    const [kept] = await Promise.all([one('renew-keep', true), one('renew-new', false)]);
    // A restart reuses the stored certificate: no new order (same serial served, the relay's DNS-01 budget for the owner unchanged).
    const budget = (await agentRow(kept.host)).dns01Remaining;
    await kept.a.kill();
    const earlier = new Set(relay.proc.lines);
    const again = agent('renew-keep', kept.env, kept.flags);
    const ev = await again.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 60_000);
    assert.deepEqual({ notAfter: ev.notAfter, pin: ev.pin }, { notAfter: kept.renewed.notAfter, pin: kept.renewed.pin });
    await relay.proc.waitFor((l) => !earlier.has(l) && l.msg === 'TLS now ends at the agent' && l.host === kept.host);
    const s = await open(kept.host, pebble.rootPem);
    assert.equal(s.getPeerX509Certificate()!.serialNumber, kept.serial, 'the restarted agent serves the stored certificate');
    s.destroy();
    const after = await agentRow(kept.host);
    assert.equal(after.dns01Remaining, budget, 'no DNS-01 challenge (no new order) for the restart');
  });
});
