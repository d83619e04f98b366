import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http1Framer, type MessageHead } from '../lib/http1.ts';
import { forwardRequestHeaders, forwardTrailers, isReservedHeader, normalizeHeaderName, serializeTrailers, type ForwardOptions } from './forward-headers.ts';

/** Parses a request head with the relay's own framer. */
function parse(head: string): MessageHead {
  let out: MessageHead | undefined;
  new Http1Framer({ kind: 'request' }, { onHead: (h) => (out = h), onBody: () => {}, onMessageEnd: () => {} }).execute(Buffer.from(head, 'latin1'));
  return out!;
}

const BASE: ForwardOptions = { clientIp: '203.0.113.7', proto: 'https', host: 'pub.tunn.test' };

function forwarded(lines: string[], o: Partial<ForwardOptions> = {}, version = '1.1'): [string, string][] {
  return forwardRequestHeaders(parse(`GET / HTTP/${version}\r\nHost: pub.tunn.test\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`), { ...BASE, ...o });
}
const names = (h: [string, string][]): string[] => h.map(([k]) => k.toLowerCase());
const value = (h: [string, string][], name: string): string[] => h.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

describe('forwardRequestHeaders', () => {
  it('drops inbound copies of every reserved header in every spelling (security: identity and client address cannot be forged)', () => {
    const h = forwarded([
      'Tunn-User-Email: forged@x.com',
      'Tunn_User_Email: forged@x.com',
      'TUNN_JWT_ASSERTION: forged',
      'tunn-anything-new: x',
      'X_Forwarded_For: 6.6.6.6',
      'x-forwarded-prefix: /evil',
      'X-FORWARDED-HOST: evil.example',
      'Forwarded: for=6.6.6.6',
      'X_Real_IP: 6.6.6.6',
      'True-Client-IP: 6.6.6.6',
      'X-Keep: yes',
    ]);
    assert.deepEqual(names(h), ['host', 'x-keep', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
    assert.deepEqual(value(h, 'x-forwarded-for'), ['203.0.113.7']);
    // The gate's identity comes after the strip, so it is the only one.
    const gated = forwarded(['Tunn_User_Email: forged@x.com'], { set: [['tunn-user-email', 'alice@example.com']] });
    assert.deepEqual(gated.filter(([k]) => normalizeHeaderName(k) === 'tunn-user-email'), [['tunn-user-email', 'alice@example.com']]);
  });

  it('removes what Connection names and never forwards the inbound Connection tokens (security: a hop-by-hop proxy downstream cannot be made to strip identity)', () => {
    const h = forwarded(['Connection: keep-alive, Tunn-User-Email, X-Forwarded-For, X_Secret, Cookie', 'X-Secret: hop', 'Cookie: a=1', 'Keep-Alive: timeout=5', 'X-Other: stays'], {
      set: [['tunn-user-email', 'alice@example.com']],
    });
    assert.deepEqual(value(h, 'connection'), [], 'HTTP/1.1 keep-alive is the default: no Connection at all');
    assert.deepEqual(value(h, 'x-secret'), []);
    assert.deepEqual(value(h, 'cookie'), []);
    assert.deepEqual(value(h, 'keep-alive'), []);
    assert.deepEqual(value(h, 'x-other'), ['stays']);
    assert.deepEqual(value(h, 'tunn-user-email'), ['alice@example.com']);
    // close and HTTP/1.0 keep-alive are the relay's own options for the next hop.
    assert.deepEqual(value(forwarded(['Connection: close, Tunn-User-Email']), 'connection'), ['close']);
    assert.deepEqual(value(forwarded(['Connection: Keep-Alive, X-A'], {}, '1.0'), 'connection'), ['keep-alive']);
    assert.deepEqual(value(forwarded([], {}, '1.0'), 'connection'), []);
  });

  it('keeps the fields the relay frames by even when Connection names them (security: the origin stays in step with the relay)', () => {
    const h = forwardRequestHeaders(parse('POST / HTTP/1.1\r\nHost: pub.tunn.test\r\nConnection: Content-Length, Host, Transfer-Encoding\r\nContent-Length: 3\r\n\r\nabc'), BASE);
    assert.deepEqual(value(h, 'content-length'), ['3']);
    assert.deepEqual(value(h, 'host'), ['pub.tunn.test']);
    // An underscore spelling of a framing field could be read as the real one by a CGI-style server.
    assert.deepEqual(names(forwarded(['Content_Length: 99', 'Transfer_Encoding: chunked'])).filter((n) => n.includes('_')), []);
  });

  it('sends only Connection: upgrade and the allowed Upgrade for a forwarded upgrade; drops Upgrade and HTTP2-Settings otherwise', () => {
    const lines = ['Connection: Upgrade, HTTP2-Settings, Tunn-User-Email', 'Upgrade: websocket', 'HTTP2-Settings: AAMAAABkAAQAAP__', 'Sec-WebSocket-Key: k'];
    const up = forwarded(lines, { upgrade: 'websocket' });
    assert.deepEqual(value(up, 'connection'), ['upgrade']);
    assert.deepEqual(value(up, 'upgrade'), ['websocket']);
    assert.deepEqual(value(up, 'http2-settings'), []);
    assert.deepEqual(value(up, 'sec-websocket-key'), ['k']);
    const plain = forwarded(lines);
    assert.deepEqual([value(plain, 'connection'), value(plain, 'upgrade'), value(plain, 'http2-settings')], [[], [], []]);
  });

  it('strips tunn cookies on every path and keeps other cookies byte for byte (security: the session cookie never reaches an origin)', () => {
    const h = forwarded(['Cookie: a=1;b="x y";  __Host-tunn=SESSION; tunn=S2; c=3', 'Cookie: tunn_attempt=x', 'Cookie: theme=dark;lang=en', 'Cookie: __host-TUNN=S3; tunnel=keep; mytunn=keep']);
    assert.deepEqual(value(h, 'cookie'), ['a=1;b="x y"; c=3', 'theme=dark;lang=en', 'tunnel=keep; mytunn=keep']);
  });

  it('strips tunn credentials the predicate recognises and keeps the origin’s own Authorization', () => {
    const isTunn = (v: string): boolean => v === 'Bearer tunn-token';
    assert.deepEqual(value(forwarded(['Authorization: Bearer tunn-token'], { isTunnCredential: isTunn }), 'authorization'), []);
    assert.deepEqual(value(forwarded(['Authorization: Bearer app-token'], { isTunnCredential: isTunn }), 'authorization'), ['Bearer app-token']);
    assert.deepEqual(value(forwarded(['Authorization: Basic dTpw'], { remove: ['authorization'] }), 'authorization'), []);
  });

  it('passes TE: trailers only, and rewrites Host when asked', () => {
    assert.deepEqual(value(forwarded(['TE: trailers']), 'te'), ['trailers']);
    assert.deepEqual(value(forwarded(['TE: gzip']), 'te'), []);
    const h = forwarded([], { hostOverride: '127.0.0.1:3000' });
    assert.deepEqual([value(h, 'host'), value(h, 'x-forwarded-host')], [['127.0.0.1:3000'], ['pub.tunn.test']]);
  });
});

describe('forwardTrailers', () => {
  it('drops reserved names in any spelling and fields RFC 9110 keeps out of trailers (security: no identity in trailers)', () => {
    const kept = forwardTrailers([
      ['Tunn-User-Email', 'forged@x.com'],
      ['tunn_jwt_assertion', 'forged'],
      ['X-Forwarded-For', '6.6.6.6'],
      ['Content-Length', '5'],
      ['Authorization', 'Bearer x'],
      ['X-Checksum', 'abc'],
    ]);
    assert.deepEqual(kept, [['X-Checksum', 'abc']]);
    assert.equal(serializeTrailers(kept).toString('latin1'), 'X-Checksum: abc\r\n\r\n');
    assert.equal(serializeTrailers([]).toString('latin1'), '\r\n');
  });
});

describe('isReservedHeader', () => {
  // Guards: the client address an app trusts cannot be forged through a header the relay does
  // not set (Cloudflare's, Fastly's, a bare X-Forwarded, a Forwarded-For variant, …).
  it('reserves the tunn-*, forwarded* and x-forwarded* namespaces and the client-address headers', () => {
    const reserved = ['tunn-user-email', 'tunn-x', 'x-forwarded-for', 'x-forwarded-anything', 'x-forwarded', 'x-forwardedfor', 'forwarded', 'forwarded-for', 'x-real-ip'];
    const clientAddress = ['cf-connecting-ip', 'x-cluster-client-ip', 'client-ip', 'fastly-client-ip', 'x-client-ip', 'true-client-ip', 'x-original-forwarded-for'];
    for (const n of [...reserved, ...clientAddress]) assert.ok(isReservedHeader(n), n);
    for (const n of ['tunnel', 'x-request-id', 'authorization', 'x-forward', 'client-hints']) assert.ok(!isReservedHeader(n), n);
  });

  it('drops every spelling of the client-address headers from a request head', () => {
    const h = forwarded(['CF-Connecting-IP: 6.6.6.6', 'X_Cluster_Client_IP: 6.6.6.6', 'Client-IP: 6.6.6.6', 'fastly-client-ip: 6.6.6.6', 'X-Forwarded: for=6.6.6.6', 'Forwarded_: a', 'X-Forwarded_For_Real: 6.6.6.6', 'X-Keep: yes']);
    assert.deepEqual(names(h), ['host', 'x-keep', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
  });
});
