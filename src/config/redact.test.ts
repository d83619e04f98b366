import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseBasicAuth } from '../auth/basic-auth.ts';
import { isTunnError } from '../lib/errors.ts';
import { agentDefaults, agentSchema, fromFile, relayDefaults, relaySchema, resolveConfig } from './config.ts';
import { redactSecrets } from './secrets.ts';

// Security property: a configuration error never echoes a secret. Error messages end up in
// terminals, CI logs and bug reports; `--basic-auth SECRET` without a colon used to come back
// as `--basic-auth "SECRET": expected user:password`. Every CONFIG_INVALID message goes through
// one redaction that knows the secret settings (src/config/secrets.ts SECRET_KEYS), and the
// checks themselves avoid quoting values.

const dir = mkdtempSync(join(tmpdir(), 'tunn-redact-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The CONFIG_INVALID message `fn` throws. */
function configMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isTunnError(e, 'CONFIG_INVALID'), String(e));
    return e.message;
  }
  assert.fail('expected CONFIG_INVALID');
}

describe('config errors redact secrets', () => {
  it('--basic-auth without a colon: says what is wrong and what to do, without the value', () => {
    for (const v of ['SECRETNOCOLON', ':SECRETPW', 'bob:']) {
      const m = configMessage(() => resolveConfig(agentSchema, [agentDefaults, { relay: 'https://tunn.example.com', token: 't', basicAuth: v }]));
      assert.match(m, /--basic-auth: must be user:password with both parts non-empty, e\.g\. admin:s3cret/);
      assert.doesNotMatch(m, /SECRET/, v);
    }
    // The parser behind it (also used outside the config) quotes nothing of a colon-less value.
    assert.throws(() => parseBasicAuth('SECRETNOCOLON'), (e: Error) => /--basic-auth has no ":": expected user:password/.test(e.message) && !e.message.includes('SECRET'));
    assert.throws(() => parseBasicAuth(':SECRETPW'), (e: Error) => /has an empty user/.test(e.message) && !e.message.includes('SECRET'));
  });

  it('any problem that quotes a secret setting gets it redacted, whole or the password inside it', () => {
    const secrets = { metricsToken: 'metrics-SECRET-0123456789', smtpUrl: 'smtp://u:SMTP%2FPW@mail.example.com:587', alertWebhook: 'https://hooks.example.com/T0/SECRETHOOK', basicAuth: 'admin:BASICPW' };
    // A check that (wrongly) quotes values: the redaction still catches them.
    const quoting = (m: Record<string, unknown>) => [`metrics ${String(m.metricsToken)}`, `smtp password SMTP/PW and ${String(m.smtpUrl)}`, `hook ${String(m.alertWebhook)}`, `pass BASICPW`];
    const m = configMessage(() => resolveConfig(relaySchema, [relayDefaults(true), { ...secrets, mailFrom: 'tunn@example.com', dataDir: dir, headTimeout: -1 }], quoting));
    for (const leak of ['SECRET', 'SMTP/PW', 'SMTP%2FPW', 'BASICPW']) assert.ok(!m.includes(leak), `${leak} in:\n${m}`);
    assert.match(m, /metrics \*\*\*/);
    assert.match(m, /--head-timeout/, 'the other problems are still reported');
  });

  it('leaves short values and messages without secrets alone', () => {
    assert.equal(redactSecrets('port must be 0-65535', { token: 'abc', store: 'postgres://h/db' }), 'port must be 0-65535');
    assert.equal(redactSecrets('token abcd here', { token: 'abcd' }), 'token *** here');
  });

  it('a config file that is not JSON: the text around the error (maybe a secret) is not shown', () => {
    const p = join(dir, 'bad.json');
    writeFileSync(p, '{"token": SECRETTOKEN123}', { mode: 0o600 });
    const m = configMessage(() => fromFile(p));
    assert.match(m, new RegExp(`the config file ${p} is not valid JSON: Unexpected token 'S' \\(the text around it is not shown: the file may hold secrets\\)`));
    assert.doesNotMatch(m, /ECRETTOKEN/);
  });
});
