import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { agentOptionsFrom } from './run-agent.ts';

describe('agent configuration errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-agentcfg-'));
  const env = { TUNN_CONFIG_DIR: dir };
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('are all reported in one message: allow-list, CIDRs, upgrades, durations, pairs, files and types', () => {
    const flags = { relay: 'https://tunn.example.com', token: 't', allow: ['bad entry'], allowIp: ['nope'], allowUpgrade: ['h2c'], for: '2x', public: true, relayCa: join(dir, 'missing.pem'), sessions: '99' };
    assert.throws(
      () => agentOptionsFrom(flags, env),
      (e) => {
        assert.ok(isTunnError(e, 'CONFIG_INVALID'));
        const lines = e.message.split('\n').slice(1);
        for (const re of [
          /^ {2}- -a "bad entry" is not an email, an @domain, a group:name or an idp:name/,
          /^ {2}- --allow-ip: not an IP address or CIDR: "nope"/,
          /^ {2}- --allow-upgrade h2c: upgrades to HTTP\/2 \(h2c\) are never forwarded/,
          /^ {2}- --for "2x" is not a duration/,
          /^ {2}- --public and -a do not go together/,
          /^ {2}- --relay-ca .*missing\.pem: no such file; pass the relay's CA certificate/,
          /^ {2}- --sessions: must be at most 16$/,
        ]) assert.ok(lines.some((l) => re.test(l)), `${re} in:\n${e.message}`);
        return true;
      },
    );
  });

  it('takes what the agent takes: comma-separated upgrades, a --for with -a', () => {
    const o = agentOptionsFrom({ relay: 'https://tunn.example.com', token: 't', allowUpgrade: ['foo,bar', 'irc'], allow: ['a@x.com'], for: '2h' }, env);
    assert.deepEqual(o.allowUpgrade, ['foo,bar', 'irc']);
  });
});
