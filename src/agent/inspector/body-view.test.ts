import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { describe, it } from 'node:test';
import { bodyInfo, dechunk, downloadBytes, sniffImage, viewOf } from './body-view.ts';
import { BodyCapture } from './model.ts';
import { REDACTED, redactHeaders, redactPath, unredactHeaders } from './redact.ts';
import { websocketMessages } from './websocket-view.ts';

function captured(bytes: Buffer, chunked = false): BodyCapture {
  const b = new BodyCapture();
  b.chunked = chunked;
  b.append(bytes, 0, bytes.length);
  return b;
}

describe('inspector body views and redaction', () => {
  it('shows JSON pretty, forms as fields, binary as hex', () => {
    assert.deepEqual(viewOf(Buffer.from('{"a":[1,2]}'), 'application/json', true), { kind: 'json', text: '{\n  "a": [\n    1,\n    2\n  ]\n}' });
    assert.deepEqual(viewOf(Buffer.from('a=1&b=two'), 'application/x-www-form-urlencoded', true), { kind: 'form', fields: [['a', '1'], ['b', 'two']] });
    const bin = viewOf(Buffer.from([0, 1, 2, 0xff]), 'application/octet-stream', true);
    assert.equal(bin.kind, 'binary');
    assert.match((bin as { hex: string }).hex, /^00000000  00 01 02 ff/);
  });

  it('undoes chunked framing and gzip before showing', () => {
    const gz = zlib.gzipSync('{"ok":true}');
    const wire = Buffer.concat([Buffer.from(`${gz.length.toString(16)}\r\n`), gz, Buffer.from('\r\n0\r\n\r\n')]);
    const info = bodyInfo(captured(wire, true), [['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']], true);
    assert.deepEqual(info.view, { kind: 'json', text: '{\n  "ok": true\n}' });
    assert.equal(dechunk(Buffer.from('3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')).toString(), 'abcde');
  });

  // Property guarded: captured bodies never run as script in the inspector's origin — only
  // raster images by signature are shown as images; SVG and HTML are text.
  it('treats SVG and HTML as text, never as an image', () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>');
    assert.equal(sniffImage(svg), undefined);
    assert.equal(viewOf(svg, 'image/svg+xml', true).kind, 'text');
    assert.equal(viewOf(Buffer.from('<script>alert(1)</script>'), 'text/html', true).kind, 'text');
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    assert.deepEqual(viewOf(png, 'text/html', true), { kind: 'image', type: 'image/png' });
  });

  // Property guarded: secrets are redacted by default in heads, JSON, forms and downloads.
  it('redacts credential headers, tunn tokens, and secret-named JSON keys and form fields', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl';
    const h = redactHeaders([['Authorization', 'Bearer x'], ['cookie', 'a=b'], ['Set-Cookie', 's=1'], ['Tunn-Jwt-Assertion', jwt], ['Tunn-User-Email', 'a@example.com'], ['X-Note', `token ${jwt}`], ['Accept', '*/*']]);
    assert.deepEqual(h, [['Authorization', REDACTED], ['cookie', REDACTED], ['Set-Cookie', REDACTED], ['Tunn-Jwt-Assertion', REDACTED], ['Tunn-User-Email', 'a@example.com'], ['X-Note', `token ${REDACTED}`], ['Accept', '*/*']]);
    const json = viewOf(Buffer.from('{"user":"a","password":"hunter2","nested":{"apiToken":"t","client_secret":"s"}}'), 'application/json', false);
    assert.equal(json.kind, 'json');
    assert.doesNotMatch((json as { text: string }).text, /hunter2|"t"|"s"/);
    assert.deepEqual(viewOf(Buffer.from('user=a&passwd=hunter2'), 'application/x-www-form-urlencoded', false), { kind: 'form', fields: [['user', 'a'], ['passwd', REDACTED]] });
    const body = captured(Buffer.from('{"password":"hunter2"}'));
    assert.doesNotMatch(downloadBytes(body, [['Content-Type', 'application/json']], false).toString(), /hunter2/);
    assert.match(downloadBytes(body, [['Content-Type', 'application/json']], true).toString(), /hunter2/);
    assert.equal(redactPath('/cb?code=1&access_token=abc&api%5Fkey=k&q=ok'), `/cb?code=1&access_token=${REDACTED}&api%5Fkey=${REDACTED}&q=ok`);
    assert.equal(redactPath('/plain/path'), '/plain/path');
    assert.deepEqual(unredactHeaders([['Authorization', REDACTED], ['X-A', '1']], [['authorization', 'Bearer real']]), [['Authorization', 'Bearer real'], ['X-A', '1']]);
  });

  it('decodes WebSocket frames, unmasking the client side', () => {
    const masked = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 'y'.charCodeAt(0) ^ 1, 'o'.charCodeAt(0) ^ 2]);
    assert.deepEqual(websocketMessages(masked, 'to-target'), [{ direction: 'to-target', opcode: 'text', compressed: false, length: 2, data: 'yo' }]);
    assert.deepEqual(websocketMessages(Buffer.from([0x82, 0x01, 0xab]), 'to-client')[0]!.data, 'ab');
  });
});
