import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkReturnUrl, safePath, targetHref, type ReturnPolicy } from './return-url.ts';

// Security property: no return value makes the relay (or a tunnel host after a hand-off)
// send a browser to a host it does not serve: no open redirect, whatever the spelling.

const served = (h: string): boolean => h.endsWith('.tunn.example.com') || h === 'custom.example.org';
const PROD: ReturnPolicy = { relayUrl: new URL('https://tunn.example.com'), isServedHost: served, strict: true };
const DEV: ReturnPolicy = { relayUrl: new URL('http://tunn.localhost:8080'), isServedHost: (h) => h.endsWith('.tunn.localhost'), strict: false };

/** Everything a browser, a proxy or a framework could read as "another host". */
const REFUSED = [
  // scheme-relative and backslash shapes, raw and encoded
  '//evil.example/',
  '///evil.example/',
  '/\\evil.example/',
  '\\\\evil.example/',
  '\\/evil.example/',
  '/%2fevil.example/',
  '/%2Fevil.example/',
  '/%5cevil.example/',
  '/%5Cevil.example/',
  '/%252fevil.example/',
  '/%25252f%25252fevil.example/',
  '/%2f%2fevil.example/',
  // tabs, newlines, spaces and other controls (browsers drop them: "/\t/x" is "//x")
  '/\t/evil.example/',
  '/\n/evil.example/',
  '/\r\n/evil.example/',
  ' //evil.example/',
  '/%09/evil.example/',
  '/%0a/evil.example/',
  '/%0d%0a/evil.example/',
  '/%00/evil.example/',
  '/x\x00',
  // malformed escapes, which readers repair in different ways
  '/%',
  '/%zz',
  // dot segments that collapse into "//"
  '/a/..//evil.example/',
  '/.//evil.example/',
  // the relay's own host with a path that is a host (finding 1)
  'https://tunn.example.com//evil.example/',
  'https://tunn.example.com/%2f%2fevil.example/',
  'https://tunn.example.com/\\evil.example/',
  'https://tunn.example.com/%5c%5cevil.example/',
  'https://tunn.example.com:443//evil.example/',
  'https://TUNN.example.com//evil.example/',
  // absolute URLs that are not ours, or that parsers repair into a host
  'https://evil.example/',
  'https:/\\evil.example/',
  'https:\\\\evil.example/',
  'https:/evil.example/',
  'https:evil.example/',
  'https:///evil.example/',
  'HTTPS://evil.example/',
  'https://evil.example\\@tunn.example.com/',
  'https://tunn.example.com@evil.example/',
  'https://user:pw@grafana.tunn.example.com/',
  'https://grafana.tunn.example.com.evil.example/',
  'https://evil.example#@grafana.tunn.example.com/',
  'https://evil.example?@grafana.tunn.example.com/',
  'https://grafana.tunn.example.com\t.evil.example/',
  'javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  'ftp://grafana.tunn.example.com/',
  // a served host, but a path that is a host once there
  'https://grafana.tunn.example.com//evil.example/',
  'https://grafana.tunn.example.com/%2f%2fevil.example/',
  'https://grafana.tunn.example.com/%5cevil.example/',
  // a production relay: no plain http, no other port (a hand-off code must not leak)
  'http://grafana.tunn.example.com/',
  'https://grafana.tunn.example.com:8443/',
  // not a path at all
  'evil.example',
  '.evil.example',
  '?return=x',
];

describe('checkReturnUrl (the one return-URL check)', () => {
  for (const raw of REFUSED) {
    it(`refuses ${JSON.stringify(raw)}`, () => {
      assert.equal(checkReturnUrl(raw, PROD), undefined);
    });
  }

  it('refuses the same shapes on a dev relay (http, a port)', () => {
    for (const raw of ['//evil.example/', '/\\evil.example/', '/%2f%2fevil.example/', 'http://tunn.localhost:8080//evil.example/', 'http://tunn.localhost:8080/%5cevil.example', 'http://app.tunn.localhost:8080//evil.example/', 'http://evil.example/']) {
      assert.equal(checkReturnUrl(raw, DEV), undefined, raw);
    }
  });

  const ALLOWED: [string, string][] = [
    ['/', '/'],
    ['/device?user_code=BCDF-GHJK', '/device?user_code=BCDF-GHJK'],
    ['/a/b?next=//evil.example/', '/a/b?next=//evil.example/'], // "//" after "?" is data, not a host
    ['/search?q=a%20b%0Ac', '/search?q=a%20b%0Ac'], // encoded controls in the query are data
    ['/a//b', '/a//b'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/x#frag', '/x'],
    ['https://tunn.example.com/device', '/device'],
    ['https://tunn.example.com', '/'],
    ['https://grafana.tunn.example.com/dash?x=1', 'https://grafana.tunn.example.com/dash?x=1'],
    ['https://Grafana.Tunn.Example.com./', 'https://grafana.tunn.example.com./'],
    ['https://grafana.tunn.example.com:443/', 'https://grafana.tunn.example.com/'],
    ['https://custom.example.org/', 'https://custom.example.org/'],
  ];
  for (const [raw, want] of ALLOWED) {
    it(`allows ${JSON.stringify(raw)} → ${want}`, () => {
      const t = checkReturnUrl(raw, PROD);
      assert.ok(t, raw);
      assert.equal(targetHref(t), want);
      assert.equal(t.kind, want.startsWith('/') ? 'relay' : 'host');
    });
  }

  it('allows http and the tunnel port on a dev relay', () => {
    const t = checkReturnUrl('http://app.tunn.localhost:8081/x', DEV);
    assert.equal(t?.kind === 'host' && t.url.href, 'http://app.tunn.localhost:8081/x');
  });

  it('every relay target is a Location no browser reads as another host', () => {
    for (const raw of [...REFUSED, ...ALLOWED.map(([r]) => r)]) {
      const t = checkReturnUrl(raw, PROD);
      if (t?.kind !== 'relay') continue;
      const resolved = new URL(t.path, 'https://tunn.example.com');
      assert.equal(resolved.origin, 'https://tunn.example.com', raw);
    }
  });
});

describe('safePath (a path after a hand-off)', () => {
  it('keeps a path on the same host and refuses one a browser reads as a host', () => {
    assert.equal(safePath('/dash?x=1'), '/dash?x=1');
    for (const bad of ['//evil.example', '/\\evil.example', '/%2f/evil.example', '/%5c/evil.example', '/\t/evil.example', 'evil.example', '', 'https://evil.example/']) {
      assert.equal(safePath(bad), undefined, bad);
    }
  });
});
