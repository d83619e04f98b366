import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REFUSAL_REASONS } from '../protocol/messages.ts';
import { StatusCounts } from './agent-output.ts';

// The agent's live status line: a target that is down (the relay's 502/504, reason `target`) is
// counted as a target error, never as an access refusal; every other reason the relay answers
// for is a refusal.

describe('agent status line counts', () => {
  it('counts a 502 (target down) as a target error, not as refused', () => {
    const c = new StatusCounts();
    c.requests = 12;
    c.answeredByRelay('policy');
    c.answeredByRelay('target');
    assert.equal(c.line('online'), '● online · 12 requests · 1 refused · 1 target error · Ctrl-C to stop');
    c.answeredByRelay('target', 2);
    assert.equal(c.line('online'), '● online · 12 requests · 1 refused · 3 target errors · Ctrl-C to stop');
  });

  it('shows no target errors until there is one', () => {
    const c = new StatusCounts();
    c.requests = 1;
    c.answeredByRelay('sign-in');
    assert.equal(c.line('reconnecting'), '● reconnecting · 1 request · 1 refused · Ctrl-C to stop');
  });

  it("counts every other reason the relay answers for as refused (the batches of a busy second too)", () => {
    const c = new StatusCounts();
    for (const r of REFUSAL_REASONS) c.answeredByRelay(r, 2);
    assert.equal(c.refused, 2 * (REFUSAL_REASONS.length - 1));
    assert.equal(c.targetErrors, 2);
  });
});
