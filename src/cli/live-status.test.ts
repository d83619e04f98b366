import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LiveStatus } from './live-status.ts';

const CLEAR = '\r\x1b[2K';

function terminal(columns = 40): { writes: string[]; write(s: string): void; columns: number; screen(): string } {
  const writes: string[] = [];
  return { writes, columns, write: (s) => void writes.push(s), screen: () => writes.join('') };
}

describe('LiveStatus', () => {
  it('keeps one status line under the log: lifted before each write, drawn again after', () => {
    const term = terminal();
    const live = new LiveStatus(term);
    live.set('● online · 0 requests');
    live.print(term, 'line 1\n');
    live.set('● online · 1 requests');
    assert.equal(term.screen(), `${CLEAR}● online · 0 requests${CLEAR}line 1\n${CLEAR}● online · 0 requests${CLEAR}● online · 1 requests`);
    live.end();
    live.print(term, 'after\n');
    assert.ok(term.screen().endsWith(`${CLEAR}after\n`), 'no status line after end()');
  });

  it('never wraps: a status longer than the terminal is cut (colours dropped) to fit one line', () => {
    const term = terminal(20);
    const live = new LiveStatus(term);
    const long = '\x1b[32m●\x1b[0m online (2/2 sessions) · 12 requests';
    live.set(long, long.replace(/\x1b\[[0-9;]*m/g, '').length);
    const drawn = term.writes.at(-1)!.slice(CLEAR.length);
    assert.ok(drawn.length <= 19, drawn);
    assert.match(drawn, /^● online \(2\/2 se.*…$/);
  });

  it('writes plain lines and nothing else when off (not a terminal, --no-color, NO_COLOR)', () => {
    const out = terminal();
    const live = new LiveStatus(undefined);
    live.set('● online');
    live.print(out, 'line\n');
    live.end();
    assert.deepEqual(out.writes, ['line\n']);
  });
});
