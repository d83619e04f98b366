import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dnsQuery, txtString } from '../../src/dns/client.ts';
import { freeDnsPort, startBind, type Bind } from '../support/bind.ts';
import { CF_BAD, CF_GOOD, CF_READONLY, startCloudflareApi, type CloudflareApi } from '../support/cloudflare-api.ts';
import { startPebble, type Pebble } from '../support/pebble.ts';
import { freePort } from '../support/ports.ts';
import { handshake } from '../support/tls-handshake.ts';
import { createToken, startCli, tmpDir, until, type Proc, type RelayHandle } from './harness.ts';

// Issue 18: DNS-01 through the operator's own DNS. A throwaway BIND 9 holds the relay's zone
// (dynamic: the relay's TSIG key may write TXT records there and nothing else) and the
// customer's zone; Pebble validates DNS-01 by asking that BIND. The relay runs with
// `--dns-provider rfc2136` and no DNS server of its own: its wildcard and a customer domain's
// certificate (through the customer's `_acme-challenge` CNAME to `<id>._acme.<zone>`) are
// issued with TXT records written through RFC 2136, and the records are gone afterwards.

const RELAY = 'tunn.localhost';
const DOMAIN = 'apps.example.test';

describe('certificates through the operator\'s DNS (RFC 2136 + TSIG to BIND 9, Pebble)', () => {
  const dir = tmpDir('tunn-dns-provider-e2e-');
  let bind: Bind;
  let pebble: Pebble;
  let relay: RelayHandle;
  let rootFile: string;
  let token: string;
  const procs: Proc[] = [];
  const wrongKey = `key "tunn-acme" {\n\talgorithm hmac-sha256;\n\tsecret "${Buffer.alloc(32, 0x5a).toString('base64')}";\n};\n`;
  const txt = async (name: string) => ((await dnsQuery({ host: '127.0.0.1', port: bind.port }, name, 'TXT', { tcp: true })).answers ?? []).filter((a) => a.type === 'TXT').map(txtString);
  const acmeArgs = () => ['--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test'];
  const cli = async (args: string[]) => {
    const p = startCli(args);
    const code = await p.exited;
    return { code, lines: p.lines, stderr: p.stderr.join('\n') };
  };

  before(async () => {
    // Recursion on for loopback: Pebble's resolver follows the customer's CNAME into the relay's
    // zone through it, as a public resolver would (an authoritative-only server does not chase
    // a CNAME into another zone).
    bind = await startBind({
      recursion: true,
      zones: [
        { name: RELAY, dynamic: true, records: ['@ IN A 127.0.0.1', '* IN A 127.0.0.1'] },
        { name: 'example.test', open: true },
      ],
    });
    const [httpsPort, httpPort] = [await freePort(), await freePort()];
    pebble = await startPebble({ dnsServer: `127.0.0.1:${bind.port}`, httpPort, tlsPort: httpsPort });
    writeFileSync(join(dir.path, 'pebble-https-ca.pem'), pebble.httpsCaPem);
    rootFile = join(dir.path, 'pebble-root.pem');
    writeFileSync(rootFile, pebble.rootPem);
    const dataDir = join(dir.path, 'relay');
    const proc = startCli([
      'relay', '--domain', RELAY, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', dataDir, '--json', ...acmeArgs(),
      '--dns-provider', 'rfc2136', '--rfc2136-server', `127.0.0.1:${bind.port}`, '--rfc2136-key-file', bind.keyFile, '--dns-resolver', `127.0.0.1:${bind.port}`,
    ]);
    procs.push(proc);
    const ready = await proc.waitFor((l) => l.event === 'ready', 40_000);
    if (ready.certificate === 'pending') await proc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 60_000);
    // With a provider the relay runs no DNS server of its own (none was asked for with --dns-port).
    assert.equal(ready.dnsPort, undefined);
    assert.equal(ready.dnsProvider, 'rfc2136');
    relay = { proc, dataDir, domain: RELAY, httpsPort, httpPort: Number(ready.httpPort), caPath: rootFile, ca: pebble.rootPem, url: `https://${RELAY}:${httpsPort}`, stop: () => proc.kill() };
    token = await createToken(relay, 'owner@example.test');
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await pebble?.stop();
    await bind?.stop();
    dir.remove();
  });

  it("the relay's wildcard was issued by DNS-01 through BIND, and its TXT records are gone", async () => {
    const h = await handshake('127.0.0.1', relay.httpsPort, `anything.${RELAY}`, pebble.rootPem);
    assert.equal(h.authorized, true, h.error);
    assert.match(h.san ?? '', /DNS:\*\.tunn\.localhost/);
    const presented = relay.proc.lines.filter((l) => l.challenge === 'dns-01').map((l) => l.identifier);
    assert.deepEqual([...new Set(presented)].sort(), [RELAY]);
    // The apex and the wildcard shared _acme-challenge.<zone>: each cleanup removed only its value, and both ran.
    await until(async () => (await txt(`_acme-challenge.${RELAY}`)).length === 0, 20_000, `_acme-challenge.${RELAY} TXT deleted`);
    // Security: the TSIG secret is never in the relay's output.
    assert.ok(!(JSON.stringify(relay.proc.lines) + relay.proc.stderr.join('\n')).includes(bind.secret));
  });

  it("a customer domain's certificate through its _acme-challenge CNAME to <id>._acme.<zone>, records gone after", async () => {
    const api = ['--relay', relay.url, '--token', token, '--relay-ca', rootFile, '--json'];
    const add = await cli(['domain', 'add', DOMAIN, '--no-wait', ...api]);
    assert.equal(add.code, 0, add.stderr);
    const records = add.lines[0]!.records as { name: string; type: string; value: string }[];
    const acme = records.find((r) => r.name === `_acme-challenge.${DOMAIN}`)!;
    assert.match(acme.value, /^[a-z0-9]+\._acme\.tunn\.localhost$/);
    // The customer creates the records at their DNS (here: the same BIND, another zone).
    await bind.nsupdate(records.map((r) => `update add ${r.name} 60 ${r.type} ${r.value}`));
    const verify = await cli(['domain', 'verify', DOMAIN, ...api]);
    assert.equal(verify.code, 0, verify.stderr);
    let h = await handshake('127.0.0.1', relay.httpsPort, `grafana.${DOMAIN}`, pebble.rootPem);
    await until(async () => (h = await handshake('127.0.0.1', relay.httpsPort, `grafana.${DOMAIN}`, pebble.rootPem)).authorized, 60_000, `a certificate for *.${DOMAIN}`);
    assert.equal(h.san, `DNS:*.${DOMAIN}`);
    assert.ok(relay.proc.lines.some((l) => l.challenge === 'dns-01' && l.identifier === DOMAIN && l.wildcard === true));
    await until(async () => (await txt(acme.value)).length === 0, 20_000, `${acme.value} TXT deleted`);
  });

  it('tunn relay dns check: writes, sees and deletes a test record with the right key', async () => {
    const r = await cli(['relay', 'dns', 'check', '--domain', RELAY, '--dns-provider', 'rfc2136', '--rfc2136-server', `127.0.0.1:${bind.port}`, '--rfc2136-key-file', bind.keyFile, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines.map((l) => l.step), ['present', 'visible', 'cleanup', 'done']);
    assert.deepEqual(await txt(`_tunn-dns-check.${RELAY}`), []);
  });

  it('a wrong key is refused with what to fix (and the secret is never printed); an unreachable server is named', async () => {
    const keyFile = join(dir.path, 'wrong.key');
    writeFileSync(keyFile, wrongKey, { mode: 0o600 });
    const r = await cli(['relay', 'dns', 'check', '--domain', RELAY, '--dns-provider', 'rfc2136', '--rfc2136-server', `127.0.0.1:${bind.port}`, '--rfc2136-key-file', keyFile]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tunn: error: adding TXT _tunn-dns-check\.tunn\.localhost in zone tunn\.localhost through the RFC 2136 server 127\.0\.0\.1:\d+: the server refused the signature of TSIG key "tunn-acme" \(BADSIG\): the secret in --rfc2136-key-file is not the server's secret for that key$/m);
    assert.ok(!r.stderr.includes(Buffer.alloc(32, 0x5a).toString('base64')));
    const port = await freeDnsPort();
    const gone = await cli(['relay', 'dns', 'check', '--domain', RELAY, '--dns-provider', 'rfc2136', '--rfc2136-server', `127.0.0.1:${port}`, '--rfc2136-key-file', bind.keyFile]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`RFC 2136 server 127\\.0\\.0\\.1:${port}.*cannot reach the server: connection refused`));
  });

  it('a relay with a wrong key: the failure feeds the certificate lifecycle (failed, retry scheduled, alert), the secret never in its logs', async () => {
    const keyFile = join(dir.path, 'wrong-relay.key');
    writeFileSync(keyFile, wrongKey, { mode: 0o600 });
    const proc = startCli([
      'relay', '--domain', RELAY, '--listen', '127.0.0.1', '--https-port', '0', '--http-port', '0', '--data-dir', join(dir.path, 'relay-wrong'), '--json', ...acmeArgs(),
      '--dns-provider', 'rfc2136', '--rfc2136-server', `127.0.0.1:${bind.port}`, '--rfc2136-key-file', keyFile,
    ]);
    procs.push(proc);
    const failed = await proc.waitFor((l) => typeof l.msg === 'string' && /^certificate for .* failed: /.test(l.msg), 60_000);
    assert.match(String(failed.msg), /BADSIG\): the secret in --rfc2136-key-file is not the server's secret for that key/);
    assert.ok(failed.nextRetryAt, JSON.stringify(failed));
    const alert = await proc.waitFor((l) => l.kind === 'issue_failed', 10_000);
    assert.match(String(alert.message), /BADSIG/);
    const all = JSON.stringify(proc.lines) + proc.stderr.join('\n');
    assert.ok(!all.includes(Buffer.alloc(32, 0x5a).toString('base64')));
    assert.ok(!all.includes(readFileSync(bind.keyFile, 'utf8').match(/secret "([^"]+)"/)![1]!));
    await proc.kill();
  });
});

describe('tunn relay dns check with --dns-provider cloudflare (a local server speaking the documented API)', () => {
  const dir = tmpDir('tunn-dns-cloudflare-e2e-');
  let cf: CloudflareApi;
  const check = async (token: string, extra: string[] = []) => {
    const tokenFile = join(dir.path, `token-${token.slice(3, 8)}`);
    writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
    const p = startCli(['relay', 'dns', 'check', '--domain', 'tunn.example.com', '--dns-provider', 'cloudflare', '--cloudflare-token-file', tokenFile, '--dns-resolver', `127.0.0.1:${cf.dnsPort}`, ...extra], {
      env: { TUNN_CLOUDFLARE_API_URL: cf.url },
    });
    const code = await p.exited;
    return { code, stdout: p.lines.map((l) => String(l.raw ?? JSON.stringify(l))).join('\n'), stderr: p.stderr.join('\n') };
  };
  before(async () => {
    cf = await startCloudflareApi('example.com');
  });
  after(async () => {
    await cf?.close();
    dir.remove();
  });

  it('a token with DNS edit: writes, sees (through --dns-resolver) and deletes the test record', async () => {
    const r = await check(CF_GOOD);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tunn: ✓ wrote TXT _tunn-dns-check\.tunn\.example\.com through Cloudflare\ntunn: ✓ TXT _tunn-dns-check\.tunn\.example\.com is visible where the CA will look\ntunn: ✓ deleted TXT _tunn-dns-check\.tunn\.example\.com \(only the test value\)/);
    assert.equal(r.stdout, 'Cloudflare can write and delete DNS-01 records under tunn.example.com');
    assert.deepEqual(cf.records, []);
    assert.ok(cf.seen.every((s) => s.auth === `Bearer ${CF_GOOD}`));
  });

  it('a token Cloudflare refuses, and one without DNS edit permission: each says what to fix, neither is printed', async () => {
    const bad = await check(CF_BAD);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^tunn: error: looking up the Cloudflare zone of tunn\.example\.com: Cloudflare refused the API token \(code 1000: Invalid API Token\): check the token in --cloudflare-token-file/m);
    const readonly = await check(CF_READONLY);
    assert.equal(readonly.code, 1);
    assert.match(readonly.stderr, /the API token is valid but may not do this \(code 10000: Authentication error\): give it Zone → DNS → Edit for zone example\.com/);
    assert.ok(![bad.stderr, readonly.stderr].some((t) => t.includes(CF_BAD) || t.includes(CF_READONLY)));
  });

  it('without --dns-provider there is nothing to check, and it says what to pass', async () => {
    const p = startCli(['relay', 'dns', 'check', '--domain', 'tunn.example.com']);
    assert.equal(await p.exited, 1);
    assert.match(p.stderr.join('\n'), /tunn: error: no DNS provider to check: pass --dns-provider rfc2136 \(with --rfc2136-server and --rfc2136-key-file\) or --dns-provider cloudflare \(with --cloudflare-token-file\)/);
  });
});
