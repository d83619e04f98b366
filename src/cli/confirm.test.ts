import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { confirm, type PromptIo } from './confirm.ts';

function io(tty: boolean, answer?: string): PromptIo & { asked: () => string } {
  const input = Object.assign(new PassThrough(), { isTTY: tty });
  const output = Object.assign(new PassThrough(), { isTTY: tty });
  let asked = '';
  output.on('data', (c: Buffer) => (asked += c.toString()));
  if (answer !== undefined) setImmediate(() => input.end(answer));
  return { input, output, asked: () => asked };
}

describe('confirm', () => {
  it('asks at a terminal; only y or yes goes ahead', async () => {
    for (const [answer, ok] of [['y\n', true], ['YES\n', true], ['\n', false], ['n\n', false], ['yes please\n', false], ['', false]] as const) {
      const t = io(true, answer);
      assert.equal(await confirm('Delete x?', { io: t }), ok, JSON.stringify(answer));
      assert.equal(t.asked(), 'Delete x? [y/N] ');
    }
  });

  it('does not ask with --yes, or with no terminal (scripts)', async () => {
    const t = io(true);
    assert.equal(await confirm('Delete x?', { yes: true, io: t }), true);
    const pipe = io(false);
    assert.equal(await confirm('Delete x?', { io: pipe }), true);
    assert.equal(t.asked() + pipe.asked(), '');
  });
});
