import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { editDistance, looksLikeCommandWord, nearestCommand, tunnVersion, unknownCommandMessage, withoutHttpWord } from './suggest.ts';

const NAMES = ['relay', 'dev', 'login', 'logout', 'whoami', 'token', 'group', 'status', 'ls', 'stop', 'domain', 'version'];

describe('command suggestions', () => {
  it('names the nearest command for a typo, and none for a word far from all', () => {
    assert.equal(nearestCommand('logn', NAMES), 'login');
    assert.equal(nearestCommand('stauts', NAMES), 'status'); // a transposition is one edit
    assert.equal(nearestCommand('Whoamu', NAMES), 'whoami');
    assert.equal(nearestCommand('frobnicate', NAMES), undefined);
    // Short words would match anything two letters off: "xy" is not a typo of "ls".
    assert.equal(nearestCommand('xy', NAMES), undefined);
    assert.equal(editDistance('ab', 'ba'), 1);
  });

  it('says what was typed, the nearest command and where the list is', () => {
    assert.equal(unknownCommandMessage('tunn', 'logn', NAMES), '"logn" is not a `tunn` command: did you mean `tunn login`? (`tunn --help` lists them)');
    assert.equal(unknownCommandMessage('tunn relay', 'zzzzzz', ['token', 'keys']), '"zzzzzz" is not a `tunn relay` command (`tunn relay --help` lists them)');
  });

  it('reads `tunn http <target>` as `tunn <target>`, only as the first word', () => {
    assert.deepEqual(withoutHttpWord(['http', '8080', '-n', 'web']), ['8080', '-n', 'web']);
    assert.deepEqual(withoutHttpWord(['http']), ['http']);
    assert.deepEqual(withoutHttpWord(['http', '--help']), ['http', '--help']);
    assert.deepEqual(withoutHttpWord(['8080', '-n', 'http']), ['8080', '-n', 'http']);
  });

  it('tells command words from targets', () => {
    assert.equal(looksLikeCommandWord('logn'), true);
    for (const t of ['8080', 'localhost:8080', 'http://localhost:8080', '[::1]:80']) assert.equal(looksLikeCommandWord(t), false, t);
  });

  it('reads the version from package.json', () => {
    assert.match(tunnVersion(), /^\d+\.\d+\.\d+/);
  });
});
