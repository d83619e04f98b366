import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { fromEnv, relayCrossChecks, relayDefaults, relaySchema, resolveConfig } from './config.ts';

// --dns-provider and its settings: what each provider needs is reported with every other
// problem, the TSIG key file may be BIND's multi-line block, and (security) no error quotes the
// key's secret or the API token.

const dir = mkdtempSync(join(tmpdir(), 'tunn-dns-provider-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'Xv+4PUfnePcfEW1/nyQi4sbeBzRppkXLPq/6MWMRWug=';
const BIND_KEY = `key "tunn-acme" {\n\talgorithm hmac-sha256;\n\tsecret "${SECRET}";\n};\n`;
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
};
const relay = (...layers: Record<string, unknown>[]) => resolveConfig(relaySchema, [relayDefaults(false), { domain: 'tunn.example.com' }, ...layers], relayCrossChecks);
const problems = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(isTunnError(e, 'CONFIG_INVALID'), String(e));
    return e.message;
  }
  return assert.fail('expected CONFIG_INVALID');
};

describe('--dns-provider settings', () => {
  it('rfc2136 reads BIND\'s multi-line key file (tsig-keygen output) and the server', () => {
    const o = relay({ dnsProvider: 'rfc2136', rfc2136Server: '10.0.0.53:53', rfc2136KeyFile: file('tsig.key', BIND_KEY) });
    assert.equal(o.rfc2136Key, BIND_KEY.replace(/\n$/, ''));
    assert.equal(o.rfc2136Server, '10.0.0.53:53');
  });

  it('the environment: TUNN_RFC2136_KEY (name:base64) and TUNN_CLOUDFLARE_TOKEN', () => {
    const env = fromEnv(Object.keys(relaySchema.shape), { TUNN_DNS_PROVIDER: 'rfc2136', TUNN_RFC2136_SERVER: 'ns1.example.com:5353', TUNN_RFC2136_KEY: `tunn-acme:${SECRET}` });
    assert.equal(relay(env).rfc2136Key, `tunn-acme:${SECRET}`);
    const cf = fromEnv(Object.keys(relaySchema.shape), { TUNN_DNS_PROVIDER: 'cloudflare', TUNN_CLOUDFLARE_TOKEN_FILE: file('cf', 'cf-token-0123456789\n') });
    assert.equal(relay(cf).cloudflareToken, 'cf-token-0123456789');
  });

  it('says what each provider still needs, all at once', () => {
    const m = problems(() => relay({ dnsProvider: 'rfc2136' }));
    assert.match(m, /--dns-provider rfc2136 needs --rfc2136-server HOST:PORT/);
    assert.match(m, /--dns-provider rfc2136 needs its TSIG key: --rfc2136-key-file FILE/);
    assert.match(problems(() => relay({ dnsProvider: 'cloudflare' })), /--dns-provider cloudflare needs an API token with Zone:DNS:Edit: --cloudflare-token-file FILE, or TUNN_CLOUDFLARE_TOKEN/);
    assert.match(problems(() => relay({ dnsProvider: 'route53' })), /--dns-provider: must be rfc2136 or cloudflare/);
    assert.match(problems(() => relay({ rfc2136Server: '10.0.0.53:53' })), /--rfc2136-server needs --dns-provider rfc2136/);
    assert.match(problems(() => relay({ dnsProvider: 'cloudflare', cloudflareToken: 'tok-0123456789', rfc2136KeyFile: file('k2', BIND_KEY) })), /--rfc2136-key-file does not go with --dns-provider cloudflare/);
  });

  it('security: a config error never quotes the TSIG secret or the API token', () => {
    const m = problems(() => relay({ dnsProvider: 'rfc2136', rfc2136KeyFile: file('k3', BIND_KEY), dnsPort: 'x' + SECRET }));
    assert.ok(!m.includes(SECRET), m);
    const t = problems(() => relay({ dnsProvider: 'cloudflare', cloudflareToken: 'cf-secret-token-value', httpsPort: 'cf-secret-token-value' }));
    assert.ok(!t.includes('cf-secret-token-value'), t);
    const line = problems(() => relay({ dnsProvider: 'rfc2136', rfc2136Key: `tunn-acme:${SECRET}`, httpsPort: SECRET }));
    assert.ok(!line.includes(SECRET), line);
  });
});
