import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { relayDataDir } from './run-token.ts';

// `tunn relay token|keys …` find the relay's data dir, and never start a new relay database.

describe('relayDataDir', () => {
  const cwd = process.cwd();
  let dir: string;
  before(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'tunn-datadir-')));
    process.chdir(dir);
  });
  after(() => {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('--dev finds the data dir `tunn dev` uses; without --dev the message points at it', () => {
    mkdirSync('.tunn/relay', { recursive: true });
    writeFileSync('.tunn/relay/tunn.db', '');
    assert.equal(relayDataDir({ dev: true }, {}), './.tunn/relay');
    assert.throws(
      () => relayDataDir({}, {}),
      (e) => isTunnError(e, 'NOT_FOUND') && e.message === `${join(dir, 'tunn-data')} holds no relay database (tunn.db): pass the data dir your relay runs with (--data-dir DIR), or --dev for \`tunn dev\`'s (there is one in ./.tunn/relay: add --dev for the relay \`tunn dev\` runs)`,
    );
  });

  it('takes --data-dir, then TUNN_DATA_DIR; a database elsewhere (--store) needs no tunn.db', () => {
    mkdirSync('a');
    writeFileSync('a/tunn.db', '');
    assert.equal(relayDataDir({ dataDir: 'a' }, { TUNN_DATA_DIR: 'b' }), 'a');
    assert.equal(relayDataDir({}, { TUNN_DATA_DIR: 'a' }), 'a');
    assert.throws(() => relayDataDir({ dataDir: 'b' }, {}), (e) => isTunnError(e, 'NOT_FOUND') && e.message.startsWith(`${join(dir, 'b')} holds no relay database`) && !e.message.includes('there is one'));
    assert.equal(relayDataDir({ dataDir: 'b', store: 'postgres://db/tunn' }, {}), 'b');
  });
});
