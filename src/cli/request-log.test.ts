import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRefusal, formatRefusal, formatRequest, logStyle, type LogStyle } from './request-log.ts';
import type { Refusal } from '../protocol/messages.ts';

const ESC = '\x1b[';
const time = new Date(2026, 0, 2, 15, 4, 5);
const tty = { isTTY: true, columns: 80 };
const plain: LogStyle = { color: false, columns: undefined };
const long = '/api/' + 'x'.repeat(300);

describe('logStyle', () => {
  it('colours a terminal only: never with --no-color, NO_COLOR, TERM=dumb or a pipe', () => {
    assert.deepEqual(logStyle(tty, {}, undefined), { color: true, columns: 80 });
    assert.equal(logStyle(tty, {}, false).color, false, '--no-color');
    assert.equal(logStyle(tty, { NO_COLOR: '1' }, undefined).color, false, 'NO_COLOR');
    // no-color.org: an empty NO_COLOR does not count.
    assert.equal(logStyle(tty, { NO_COLOR: '' }, undefined).color, true);
    assert.equal(logStyle(tty, { TERM: 'dumb' }, undefined).color, false);
    assert.deepEqual(logStyle({ isTTY: false }, {}, true), { color: false, columns: undefined }, 'a pipe gets plain lines, not cut to a width');
  });
});

describe('request log lines', () => {
  it('aligns the columns and cuts long paths to the terminal width', () => {
    for (const columns of [60, 80, 132]) {
      const s: LogStyle = { color: false, columns };
      const a = formatRequest({ time, method: 'GET', path: long, status: 200, durationMs: 12.3, bytes: 1234 }, s);
      const b = formatRequest({ time, method: 'DELETE', path: '/x', status: 404, durationMs: 1500, bytes: 10 }, s);
      assert.ok(a.length <= columns, `${a.length} > ${columns}: ${a}`);
      assert.match(a, /…$/);
      assert.equal(a.indexOf('/api/'), b.indexOf('/x'), 'paths start in the same column');
      assert.equal(a.indexOf('200'), b.indexOf('404'), 'statuses in the same column');
    }
    const r = formatRefusal({ at: time.getTime(), method: 'GET', path: long, status: 403, reason: 'policy', who: 'bob@x.com', ip: '192.0.2.1' }, 'localhost:8080', { color: false, columns: 80 });
    assert.ok(r.length <= 80, r);
    assert.match(r, /^15:04:05  GET     403  bob@x\.com not allowed  \/api\/x+…$/);
  });

  it('colours the status by class in a terminal, and nothing on plain lines', () => {
    const s: LogStyle = { color: true, columns: 100 };
    const line = (status: number) => formatRequest({ time, method: 'GET', path: '/', status, durationMs: 1, bytes: 1 }, s);
    assert.ok(line(200).includes(`${ESC}32m200`), 'green 2xx');
    assert.ok(line(302).includes(`${ESC}36m302`), 'cyan 3xx');
    assert.ok(line(404).includes(`${ESC}33m404`), 'yellow 4xx');
    assert.ok(line(502).includes(`${ESC}31m502`), 'red 5xx');
    const p = formatRequest({ time, method: 'GET', path: long, status: 500, durationMs: 1, bytes: 1 }, plain);
    assert.ok(!p.includes(ESC));
    assert.ok(p.includes('x'.repeat(150)), 'plain lines keep long paths (up to 200 characters)');
  });
});

describe('inert', () => {
  // Security: a visitor picks the path; it must not drive the owner's terminal (cursor moves, colours, titles).
  it('escapes C0 and C1 control characters in what visitors choose', () => {
    const path = '/a\x1b]0;owned\x07b\x9b31mc\x7f';
    const line = formatRequest({ time, method: 'GET', path, status: 200, durationMs: 1, bytes: 1 }, { color: true, columns: 200 });
    assert.ok(!/[\x07\x7f\x9b]/.test(line), JSON.stringify(line));
    assert.ok(line.endsWith('/a\\x1b]0;owned\\x07b\\x9b31mc\\x7f'), line);
    const r = formatRefusal({ at: 0, method: 'GET', path, status: 403, reason: 'policy', who: 'x\x1b[2J@y.com', ip: '1.2.3.4' }, 't', plain);
    assert.ok(!/[\x1b\x07\x7f\x9b]/.test(r), JSON.stringify(r));
  });
});

describe('describeRefusal', () => {
  const r = (over: Partial<Refusal>): Refusal => ({ at: 0, method: 'GET', path: '/', status: 403, reason: 'policy', ip: '192.0.2.9', ...over });
  it('says who and why, in the owner’s words', () => {
    assert.match(describeRefusal(r({ status: 502, reason: 'target', detail: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), 'https://h:1'), /TLS failed/);
    assert.equal(describeRefusal(r({ who: 'bob@x.com' }), 't'), 'bob@x.com not allowed');
    assert.equal(describeRefusal(r({ reason: 'ip' }), 't'), 'IP 192.0.2.9 not allowed (--allow-ip)');
    assert.equal(describeRefusal(r({ status: 429, reason: 'rate-limit', detail: '100/min per client IP' }), 't'), 'rate limit 100/min per client IP (192.0.2.9)');
    assert.equal(describeRefusal(r({ status: 401, reason: 'basic-auth', detail: 'wrong user or password' }), 't'), 'basic auth: wrong user or password');
    assert.equal(describeRefusal(r({ status: 502, reason: 'target', detail: 'ECONNREFUSED' }), 'localhost:8080'), 'target localhost:8080 down: nothing listens there (ECONNREFUSED)');
    assert.equal(describeRefusal(r({ status: 502, reason: 'target', detail: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'https://localhost:8443'), 'target https://localhost:8443: TLS failed (DEPTH_ZERO_SELF_SIGNED_CERT); --insecure-target skips verifying its certificate');
  });
});
