import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { agentDefaults, agentSchema, fromEnv, fromFile, relayDefaults, relaySchema, resolveConfig, resolveSecretLayer } from './config.ts';
import { commandLineSecretWarnings, readSecretFile, SECRET_KEYS } from './secrets.ts';

// Security property (issue 9, "Also"): secrets on the command line are readable in
// /proc/<pid>/cmdline by every local user, so every secret setting also comes from a file and
// the environment, with errors that say what is wrong with the file.

const dir = mkdtempSync(join(tmpdir(), 'tunn-secrets-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string): string => {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
};
const RELAY = 'https://tunn.example.com';
const agent = (...layers: Record<string, unknown>[]) => resolveConfig(agentSchema, [agentDefaults, { relay: RELAY }, ...layers]);
const configError = (fn: () => unknown, message: string) =>
  assert.throws(fn, (e) => {
    assert.ok(isTunnError(e, 'CONFIG_INVALID'), String(e));
    assert.ok(e.message.includes(message), `expected ${JSON.stringify(message)} in:\n${e.message}`);
    return true;
  });

describe('secret files', () => {
  it('reads --token-file, dropping one trailing newline (LF or CRLF)', () => {
    assert.equal(agent({ tokenFile: file('t1', 'tok-123\n') }).token, 'tok-123');
    assert.equal(agent({ tokenFile: file('t2', 'tok-456\r\n') }).token, 'tok-456');
    assert.equal(agent({ tokenFile: file('t3', 'tok-789') }).token, 'tok-789');
  });

  it('reads TUNN_<FLAG> and TUNN_<FLAG>_FILE from the environment', () => {
    assert.equal(agent(fromEnv(Object.keys(agentSchema.shape), { TUNN_TOKEN: 'from-env' })).token, 'from-env');
    assert.equal(agent(fromEnv(Object.keys(agentSchema.shape), { TUNN_TOKEN_FILE: file('t4', 'from-env-file\n') })).token, 'from-env-file');
    assert.equal(agent(fromEnv(Object.keys(agentSchema.shape), { TUNN_TOKEN: 't', TUNN_BASIC_AUTH_FILE: file('b1', 'u:p\n') })).basicAuth, 'u:p');
  });

  it('reads "<key>File" in a config file', () => {
    const cfg = file('relay.json', JSON.stringify({ metricsTokenFile: file('m1', 'metrics-token-0123456789\n') }));
    assert.equal(resolveConfig(relaySchema, [relayDefaults(true), fromFile(cfg)]).metricsToken, 'metrics-token-0123456789');
  });

  it('a flag beats the environment, whichever form each uses', () => {
    const env = fromEnv(Object.keys(agentSchema.shape), { TUNN_TOKEN: 'env-token' });
    assert.equal(agent(env, { tokenFile: file('t5', 'flag-file-token\n') }).token, 'flag-file-token');
    const envFile = fromEnv(Object.keys(agentSchema.shape), { TUNN_TOKEN_FILE: file('t6', 'env-file-token\n') });
    assert.equal(agent(envFile, { token: 'flag-token' }).token, 'flag-token');
  });

  it('every secret setting has a file form and an environment form', () => {
    for (const k of SECRET_KEYS) {
      const schema = k === 'token' || k === 'basicAuth' ? agentSchema : relaySchema;
      assert.ok(k in schema.shape, `${k} is a setting`);
    }
    const values: Record<string, string> = {
      metricsTokenFile: 'metrics-token-0123456789',
      oidcClientSecretFile: 'oidc-secret',
      githubClientSecretFile: 'gh-secret',
      googleClientSecretFile: 'g-secret',
      smtpUrlFile: 'smtp://u:p@mail.example.com:587',
      storeFile: 'postgres://tunn:pw@db.example.com/tunn',
      certEventTokenFile: 'cert-event-token-0123456789',
      secretKeyFile: 'a'.repeat(64),
      alertWebhookFile: 'https://hooks.example.com/services/T0/B0/secret',
    };
    const layer = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, file(k, v + '\n')]));
    const c = resolveConfig(relaySchema, [relayDefaults(true), { oidcIssuer: 'https://id.example.com', oidcClientId: 'x', githubClientId: 'x', googleClientId: 'x', mailFrom: 'a@example.com' }, layer]);
    for (const [k, v] of Object.entries(values)) assert.equal((c as Record<string, unknown>)[k.replace(/File$/, '')], v, k);
    const env = fromEnv(Object.keys(relaySchema.shape), { TUNN_OIDC_CLIENT_SECRET_FILE: layer.oidcClientSecretFile, TUNN_CERT_EVENT_TOKEN: 'cert-event-token-from-env' });
    assert.deepEqual(resolveSecretLayer(env), { oidcClientSecret: 'oidc-secret', certEventToken: 'cert-event-token-from-env' });
  });
});

describe('secret file errors: each says what is wrong and what to do', () => {
  it('a missing file', () => {
    const p = join(dir, 'nope');
    configError(() => agent({ tokenFile: p }), `--token-file ${p}: no such file; create it holding only the secret (chmod 600), or set TUNN_TOKEN`);
  });

  it('an unreadable file', () => {
    const p = file('unreadable', 'x\n');
    chmodSync(p, 0o000);
    const expected = `--token-file ${p}: permission denied; make it readable by the user that runs tunn (chown that user, chmod 600)`;
    if (process.getuid?.() !== 0) return configError(() => agent({ tokenFile: p }), expected);
    // root reads any file: read it as nobody in a child process instead, with the module and Node
    // itself where nobody can reach them (the checkout may sit in a directory only root can enter).
    const lib = mkdtempSync(join(tmpdir(), 'tunn-secrets-lib-'));
    chmodSync(lib, 0o755);
    copyFileSync(join(import.meta.dirname, 'secrets.ts'), join(lib, 'secrets.ts'));
    chmodSync(join(lib, 'secrets.ts'), 0o644);
    const node = join(lib, 'node');
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node);
      chmodSync(node, 0o755);
    }
    const code = `import { readSecretFile } from ${JSON.stringify(join(lib, 'secrets.ts'))}; process.stdout.write(JSON.stringify(readSecretFile(process.argv[1], '--token-file', 'token')))`;
    try {
      const r = spawnSync(node, ['--input-type=module', '-e', code, p], { uid: 65534, gid: 65534, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(r.stdout || '{}'), { problem: expected }, r.stderr);
    } finally {
      rmSync(lib, { recursive: true, force: true });
    }
  });

  it('a directory', () => {
    const p = join(dir, 'adir');
    mkdirSync(p);
    configError(() => agent({ basicAuthFile: p }), `--basic-auth-file ${p} is a directory; pass the file that holds the secret`);
  });

  it('an empty file (or only a newline)', () => {
    const p = file('empty', '\n');
    configError(() => agent({ tokenFile: p }), `--token-file ${p} is empty; write the secret into it, on one line`);
    const q = file('empty2', '');
    assert.match(String((readSecretFile(q, '--token-file', 'token') as { problem: string }).problem), /is empty/);
  });

  it('a file of several lines', () => {
    const p = file('lines', 'tok\nother\n');
    configError(() => agent({ tokenFile: p }), `--token-file ${p} holds more than one line; a secret file holds only the secret, on one line`);
  });

  it('both the flag and its file', () => {
    configError(() => agent({ token: 'x', tokenFile: file('t7', 'y') }), '--token and --token-file are both given; keep only --token-file');
  });

  it('names what the user typed: the environment variable, or the key in the config file', () => {
    const p = join(dir, 'missing-env');
    configError(() => agent(fromEnv(['token'], { TUNN_TOKEN_FILE: p })), `TUNN_TOKEN_FILE ${p}: no such file`);
    configError(() => agent(fromEnv(['token'], { TUNN_TOKEN: 'a', TUNN_TOKEN_FILE: p })), 'TUNN_TOKEN and TUNN_TOKEN_FILE are both given; keep only TUNN_TOKEN_FILE');
    const cfg = file('agent.json', JSON.stringify({ tokenFile: p }));
    configError(() => agent(fromFile(cfg)), `"tokenFile" in ${cfg} ${p}: no such file`);
  });

  it('is reported with every other error at once, and not again as "is required"', () => {
    const p = join(dir, 'gone');
    assert.throws(
      () => resolveConfig(agentSchema, [agentDefaults, { relay: 'not a url', tokenFile: p }]),
      (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes(`--token-file ${p}: no such file`) && e.message.includes('--relay: must be a URL') && !e.message.includes('--token: is required'),
    );
  });

  it('resolveSecretLayer throws the same messages', () => {
    configError(() => resolveSecretLayer({ token: 'a', tokenFile: 'b' }), '--token and --token-file are both given');
  });
});

describe('command-line secret warnings', () => {
  it('warns for each secret flag, pointing at the -file and environment forms', () => {
    assert.deepEqual(commandLineSecretWarnings({ token: 'abc', basicAuth: 'u:p', name: 'grafana' }), [
      '--token on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --token-file FILE or set TUNN_TOKEN instead',
      '--basic-auth on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --basic-auth-file FILE or set TUNN_BASIC_AUTH instead',
    ]);
    for (const k of ['metricsToken', 'oidcClientSecret', 'githubClientSecret', 'googleClientSecret', 'certEventToken', 'alertWebhook']) assert.equal(commandLineSecretWarnings({ [k]: 'secret' }).length, 1, k);
  });

  it('warns for URLs only when they carry a password', () => {
    assert.deepEqual(commandLineSecretWarnings({ smtpUrl: 'smtp://mail.example.com:587', store: '/var/lib/tunn/tunn.db' }), []);
    assert.deepEqual(commandLineSecretWarnings({ smtpUrl: 'smtp://u:pw@mail.example.com:587', store: 'postgres://tunn:pw@db/tunn' }), [
      'the password in --smtp-url on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --smtp-url-file FILE or set TUNN_SMTP_URL instead',
      'the password in --store on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --store-file FILE or set TUNN_STORE instead',
    ]);
  });

  it('does not warn for the file forms', () => {
    assert.deepEqual(commandLineSecretWarnings({ tokenFile: '/run/secrets/token', smtpUrlFile: '/x' }), []);
  });
});
