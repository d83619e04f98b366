import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { printJson } from '../cli/output.ts';
import { inert, inertJson } from './inert.ts';
import { createLogger } from './logger.ts';

// Security property: what a visitor chooses (a path, a Host, a method) cannot drive the
// terminal of whoever reads the relay's or agent's output: no raw C0/C1 control character
// (ESC, BEL, CSI 0x9b, DEL) reaches a log line or a --json line.

const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;
// What `GET /v1/%1b]0;PWNED%07%1b[31mRED` becomes once Hono has decoded the path, plus a C1 CSI.
const HOSTILE = '/v1/\x1b]0;PWNED\x07\x1b[31mRED\x9b31m\x7f';

function sink(): { stream: NodeJS.WritableStream; text: () => string } {
  const parts: string[] = [];
  const stream = new Writable({
    write(c: Buffer | string, _e, cb) {
      parts.push(String(c));
      cb();
    },
  });
  return { stream, text: () => parts.join('') };
}

describe('inert', () => {
  it('shows every C0 and C1 control character and DEL as \\xNN, and leaves the rest', () => {
    assert.equal(inert(HOSTILE), '/v1/\\x1b]0;PWNED\\x07\\x1b[31mRED\\x9b31m\\x7f');
    assert.equal(inert('héllo ü €'), 'héllo ü €');
  });
  it('inertJson escapes DEL and C1 in JSON text, which still parses to the same value', () => {
    const json = JSON.stringify({ path: HOSTILE });
    assert.ok(/[\x7f\x9b]/.test(json), 'JSON.stringify alone leaves C1 and DEL raw');
    const safe = inertJson(json);
    assert.ok(!RAW_CONTROL.test(safe), safe);
    assert.deepEqual(JSON.parse(safe), { path: HOSTILE });
  });
});

describe('logger sink', () => {
  it('human lines (tunn relay in a terminal) escape the message and every field', async () => {
    const s = sink();
    const log = createLogger({ json: false, destination: s.stream });
    log.info({ host: 'x\x9b2J.tunn.localhost', method: 'G\x1bET', path: HOSTILE, nested: { p: HOSTILE } }, `answered ${HOSTILE}`);
    const out = s.text();
    assert.ok(!RAW_CONTROL.test(out.replace(/\n$/, '')), JSON.stringify(out));
    assert.ok(out.includes('path=/v1/\\x1b]0;PWNED\\x07'), out);
    assert.ok(out.endsWith('\n') && out.split('\n').length === 2, 'one line per record, however many newlines a field carries');
  });
  it('JSON lines escape C1 and DEL too, and parse back to the same values', () => {
    const s = sink();
    const log = createLogger({ json: true, destination: s.stream });
    log.info({ path: HOSTILE }, 'answered by the relay');
    const out = s.text();
    assert.ok(!RAW_CONTROL.test(out.replace(/\n$/, '')), JSON.stringify(out));
    assert.equal(JSON.parse(out).path, HOSTILE);
  });
  it('printJson (the CLI\'s --json lines) escapes C1 and DEL', () => {
    const s = sink();
    printJson({ event: 'x', path: HOSTILE }, { write: (t: string) => s.stream.write(t) });
    const out = s.text();
    assert.ok(!RAW_CONTROL.test(out.replace(/\n$/, '')), JSON.stringify(out));
    assert.equal(JSON.parse(out).path, HOSTILE);
  });
});
