import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { agentOptionsFrom } from './run-agent.ts';
import { parseSetting, readUserConfig, setUserSetting, unsetUserSetting, userConfigPath } from './user-config.ts';

describe('tunn config (the user\'s default agent settings)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-userconfig-'));
  const env = { TUNN_CONFIG_DIR: dir };
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stores checked values: paths absolute, lists and numbers typed; the file is 0600', () => {
    assert.equal(parseSetting('relay-ca', 'data/dev-ca.pem', '/home/a'), '/home/a/data/dev-ca.pem');
    assert.deepEqual(parseSetting('allow', 'a@x.com, group:eng'), ['a@x.com', 'group:eng']);
    assert.equal(parseSetting('rateLimit', '100'), 100);
    assert.equal(parseSetting('public', 'true'), true);
    const r = setUserSetting('relay', 'https://tunn.example.com', env);
    assert.equal(r.path, userConfigPath(env));
    setUserSetting('sessions', '3', env);
    assert.deepEqual(JSON.parse(readFileSync(r.path, 'utf8')), { relay: 'https://tunn.example.com', sessions: 3 });
    assert.equal((statSync(r.path).mode & 0o777).toString(8), '600');
    assert.equal(unsetUserSetting('sessions', env).was, true);
    assert.deepEqual(readUserConfig(env), { relay: 'https://tunn.example.com' });
  });

  // Security property: secrets stay off command lines; `tunn config set token …` would also
  // write the token in the clear into a settings file.
  it('refuses secrets, unknown keys and bad values, saying what to do', () => {
    assert.throws(() => parseSetting('token', 'abc'), (e) => isTunnError(e, 'CONFIG_INVALID') && /token is a secret .*set tokenFile to a file holding it.*`tunn login`/.test(e.message));
    assert.throws(() => parseSetting('basicAuth', 'u:p'), (e) => isTunnError(e, 'CONFIG_INVALID') && /set basicAuthFile/.test(e.message));
    assert.throws(() => parseSetting('bogus', '1'), (e) => isTunnError(e, 'CONFIG_INVALID') && /^unknown setting "bogus": one of relay, relayCa, /.test(e.message));
    assert.throws(() => parseSetting('rate-limit', '0'), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message === '--rate-limit "0": must be at least 1');
    assert.throws(() => parseSetting('relay', 'tunn.example.com'), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message === '--relay "tunn.example.com": must be a URL such as https://tunn.example.com');
  });

  it('is the lowest layer of the agent\'s settings: a --config file, env and flags win', () => {
    setUserSetting('relay', 'https://tunn.example.com', env);
    setUserSetting('sessions', '3', env);
    const o = agentOptionsFrom({ token: 't' }, env);
    assert.equal(o.relay, 'https://tunn.example.com');
    assert.equal(o.sessions, 3);
    assert.equal(agentOptionsFrom({ token: 't', sessions: '5' }, env).sessions, 5);
    assert.equal(agentOptionsFrom({ token: 't' }, { ...env, TUNN_RELAY: 'https://other.example.com' }).relay, 'https://other.example.com');
  });
});
