import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, createToken, NODE, request, ROOT, startCli, startRelay, tmpDir, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { launchBrowser } from '../support/browser.ts';

// The commands people reach for (issue 17), run as the real CLI against a real relay.

const tmp = tmpDir('tunn-cli-');
/** Every run gets its own config dir: the machine's saved credentials are never read. */
const env = { TUNN_CONFIG_DIR: join(tmp.path, 'config'), NO_COLOR: '1' };

export async function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string; json: Record<string, unknown>[] }> {
  const p = startCli(args, { env: { ...env, ...extraEnv } });
  const code = await p.exited;
  // Let readline deliver the last lines.
  await new Promise((r) => setImmediate(r));
  return { code, stdout: p.lines.map((l) => (typeof l.raw === 'string' ? l.raw : JSON.stringify(l))).join('\n'), stderr: p.stderr.join('\n'), json: p.lines.filter((l) => l.raw === undefined) };
}

after(() => tmp.remove());

describe('command words', () => {
  it('`tunn version` and `--version` print the package version', async () => {
    const v = await run(['version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^tunn \d+\.\d+\.\d+ \(Node\.js 24\./);
    assert.match((await run(['--version'])).stdout, /^\d+\.\d+\.\d+$/);
  });

  it('a mistyped command names the nearest one, at the top and under `tunn relay`', async () => {
    const r = await run(['logn']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"logn" is not a `tunn` command: did you mean `tunn login`\?/);
    assert.match((await run(['stauts'])).stderr, /did you mean `tunn status`\?/);
    const relay = await run(['relay', 'tokn', 'list']);
    assert.equal(relay.code, 1);
    assert.match(relay.stderr, /"tokn" is not a `tunn relay` command: did you mean `tunn relay token`\?/);
    const far = await run(['frobnicate']);
    assert.match(far.stderr, /"frobnicate" is not a target \(a port such as 8080, host:port or http:\/\/host:port\) or a tunn command/);
    assert.match((await run(['http'])).stderr, /`tunn http` needs the local service: `tunn http 8080`/);
  });
});

describe('tunn http, status and stop', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let aliceFile: string;
  let bobFile: string;
  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    aliceFile = join(tmp.path, 'alice.token');
    bobFile = join(tmp.path, 'bob.token');
    writeFileSync(aliceFile, await createToken(relay, 'alice@example.com'), { mode: 0o600 });
    writeFileSync(bobFile, await createToken(relay, 'bob@example.com'), { mode: 0o600 });
  });
  after(async () => {
    await relay?.stop();
    await origin?.close();
  });
  const api = (file: string) => ['--relay', relay.url, '--relay-ca', relay.caPath, '--token-file', file];

  it('`tunn http <port>` serves like `tunn <port>`; status lists only the caller\'s tunnels; stop is owner-only and ends the agent', async () => {
    const agent = startCli(['http', String(origin.port), '-n', 'web', '--public', '--allow-ip', '127.0.0.1/32', '--rate-limit', '100', ...api(aliceFile), '--json', '--no-inspect'], { env });
    try {
      const ready = await agent.waitFor((l) => l.event === 'ready');
      const httpUrl = (ready.urls as string[]).find((u) => u.startsWith('http:'))!;
      assert.match(httpUrl, /^http:\/\/web\.tunn\.localhost:/);
      assert.equal((await request(`${httpUrl}/echo`)).status, 200);

      const status = await run(['status', ...api(aliceFile), '--json']);
      assert.equal(status.code, 0, status.stderr);
      const tunnels = status.json[0]!.tunnels as Record<string, unknown>[];
      assert.equal(tunnels.length, 1);
      const t = tunnels[0]!;
      assert.equal(t.name, 'web');
      assert.equal(t.host, `web.${relay.domain}`);
      assert.equal(t.kind, 'http');
      assert.equal(t.agents, 1);
      assert.ok(Number(t.requests) >= 1, `requests counted: ${JSON.stringify(t)}`);
      assert.ok(Number(t.bytesIn) > 0 && Number(t.bytesOut) > 0, `bytes counted: ${JSON.stringify(t)}`);
      assert.deepEqual([t.owner, t.public, t.access, t.domain], ['alice@example.com', true, 'owner', relay.domain]);
      assert.deepEqual(t.allowed, ['everyone (public)', 'from 127.0.0.1/32', '100/min per client']);
      assert.ok(Math.abs(Date.parse(String(t.since)) - Date.now()) < 120_000);

      // The human table has a header row and the tunnel; `ls` is the same command.
      const table = await run(['ls', ...api(aliceFile)]);
      assert.match(table.stdout, /^NAME\s+URL\s+KIND\s+AGENTS\s+SINCE\s+REQUESTS\s+ALLOWED\n/);
      assert.match(table.stdout, /\nweb\s+https:\/\/web\.tunn\.localhost:\d+\s+http\s+1 \(2 conn\)\s+\d+s ago\s+\d+\s+everyone \(public\), from 127\.0\.0\.1\/32, 100\/min per client$/);

      // Security property: owner-only. Bob neither sees nor stops alice's tunnel.
      const bobStatus = await run(['status', ...api(bobFile), '--json']);
      assert.deepEqual(bobStatus.json[0]!.tunnels, []);
      assert.equal((await run(['ls', ...api(bobFile)])).stdout, 'no live tunnels (start one with `tunn <port>`)');
      const bobStop = await run(['stop', 'web', ...api(bobFile)]);
      assert.equal(bobStop.code, 1);
      assert.match(bobStop.stderr, /you have no live tunnel named web: `tunn status` lists yours/);
      assert.equal(agent.child.exitCode, null, 'alice\'s agent still runs');

      // The console's live view of the same tunnels: server-sent events through the real relay.
      const events = openEvents(`${relay.url}/v1/tunnels/events`, readFileSync(aliceFile, 'utf8').trim(), readFileSync(relay.caPath, 'utf8'));
      await events.waitFor(new RegExp(`event: snapshot\ndata: \\{"tunnels":\\[\\{"name":"web","host":"web\\.${relay.domain.replace(/\./g, '\\.')}"`));

      const stop = await run(['stop', `web.${relay.domain}`, ...api(aliceFile)]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.match(stop.stdout, /^stopped https:\/\/web\.tunn\.localhost:\d+ /);
      // The agent is told why and exits; the tunnel is gone.
      const fatal = await agent.waitFor((l) => l.event === 'fatal');
      assert.equal(fatal.code, 'STOPPED');
      assert.match(String(fatal.message), /stopped with `tunn stop` by alice@example\.com/);
      assert.equal(await agent.exited, 1);
      assert.deepEqual((await run(['status', ...api(aliceFile), '--json'])).json[0]!.tunnels, []);
      await events.waitFor(new RegExp(`event: down\ndata: \\{"host":"web\\.${relay.domain.replace(/\./g, '\\.')}"\\}`));
      events.close();
    } finally {
      await agent.kill();
    }
  });
});

/** GET a server-sent events stream with a token; waitFor(re) resolves once the text so far matches (20 s at most). */
function openEvents(url: string, token: string, ca: string): { waitFor(re: RegExp): Promise<void>; close(): void } {
  let text = '';
  const waiters = new Set<() => void>();
  const req = https.get(url, { headers: { authorization: `Bearer ${token}` }, ca, lookup: localhostAwareLookup as never, agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      text += c;
      for (const w of waiters) w();
    });
  });
  req.on('error', () => {});
  return {
    waitFor: (re) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!re.test(text)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${re} in the event stream; got: ${text.slice(-2000)}`));
        }, 20_000);
        waiters.add(check);
        check();
      }),
    close: () => req.destroy(),
  };
}

describe('saved sign-in and defaults', () => {
  let relay: RelayHandle;
  const home = join(tmp.path, 'saved');
  const savedEnv = { TUNN_CONFIG_DIR: home };
  before(async () => {
    relay = await startRelay();
  });
  after(async () => {
    await relay?.stop();
  });

  it('`tunn config set relay` is the default relay; a revoked saved sign-in says to run `tunn login`', async () => {
    const token = await createToken(relay, 'dora@example.com');
    // What `tunn login` saves (device login itself is covered in identity.test.ts).
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'credentials.json'), JSON.stringify({ default: 'https://elsewhere.example.com', relays: { [relay.url]: { token, email: 'dora@example.com', relayCa: relay.caPath } } }), { mode: 0o600 });
    assert.equal((await run(['config', 'set', 'relay', relay.url], savedEnv)).code, 0);
    const who = await run(['whoami'], savedEnv);
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout, 'dora@example.com');

    const jti = String(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti);
    assert.equal((await run(['relay', 'token', 'revoke', jti, '--data-dir', relay.dataDir])).code, 0);
    const refused = await run(['status'], savedEnv);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`the sign-in saved for ${relay.url.replace(/[.]/g, '\\.')} no longer works \\(.*\\): run \`tunn login --relay ${relay.url.replace(/[.]/g, '\\.')}\``));
    // The agent, too, says how to fix it instead of only "revoked".
    const agent = await run(['8080', '--json', '--no-inspect'], savedEnv);
    assert.equal(agent.code, 1);
    assert.match(agent.stderr, /the sign-in saved for .* no longer works: run `tunn login --relay /);
  });
});

describe('operator commands on the data dir', () => {
  let relay: RelayHandle;
  let aliceFile: string;
  before(async () => {
    relay = await startRelay();
    aliceFile = join(tmp.path, 'operator-alice-token');
    writeFileSync(aliceFile, (await createToken(relay, 'alice@example.com')) + '\n', { mode: 0o600 });
  });
  after(async () => {
    await relay?.stop();
  });

  it('token list and keys list print header rows; the signing key is marked and cannot be retired', async () => {
    const list = await run(['relay', 'token', 'list', '--data-dir', relay.dataDir]);
    assert.equal(list.code, 0, list.stderr);
    const [header, row] = list.stdout.split('\n');
    assert.match(header!, /^ID\s+KIND\s+EMAIL\s+NAME\s+CREATED\s+LAST USED\s+STATUS$/);
    assert.match(row!, /^\S+\s+agent\s+alice@example\.com\s+agent\s+\S+\s+\S+\s+active$/);

    const keys = await run(['relay', 'keys', 'list', '--data-dir', relay.dataDir]);
    const lines = keys.stdout.split('\n');
    assert.match(lines[0]!, /^KID\s+ALG\s+CREATED\s+STATUS$/);
    assert.equal(lines.length, 2);
    const signing = lines[1]!.split(/\s+/)[0]!;
    assert.match(lines[1]!, /signing \(new tokens\)$/);
    const json = await run(['relay', 'keys', 'list', '--data-dir', relay.dataDir, '--json']);
    assert.deepEqual((json.json[0]!.keys as { kid: string; signing: boolean }[]).map((k) => [k.kid, k.signing]), [[signing, true]]);

    const retire = await run(['relay', 'keys', 'retire', signing, '--data-dir', relay.dataDir]);
    assert.equal(retire.code, 1);
    assert.match(retire.stderr, new RegExp(`${signing} is the signing key \\(new tokens are signed with it\\): rotate first \\(\`tunn relay keys rotate\`\\), then retire it`));
    assert.equal((await run(['relay', 'keys', 'rotate', '--data-dir', relay.dataDir])).code, 0);
    const after = (await run(['relay', 'keys', 'list', '--data-dir', relay.dataDir])).stdout.split('\n');
    assert.match(after[1]!, new RegExp(`^${signing}\\s.*verifies older tokens$`));
    assert.match(after[2]!, /signing \(new tokens\)$/);
    assert.equal((await run(['relay', 'keys', 'retire', signing, '--data-dir', relay.dataDir])).code, 0);
  });

  it('token list --json speaks the API\'s names: the operator\'s list and `tunn token list` name one token alike', async () => {
    const ops = await run(['relay', 'token', 'list', '--data-dir', relay.dataDir, '--json']);
    assert.equal(ops.code, 0, ops.stderr);
    const opTokens = ops.json[0]!.tokens as Record<string, unknown>[];
    const mine = await run(['token', 'list', '--relay', relay.url, '--relay-ca', relay.caPath, '--token-file', aliceFile, '--json']);
    assert.equal(mine.code, 0, mine.stderr);
    const apiTokens = mine.json[0]!.tokens as Record<string, unknown>[];
    assert.equal(apiTokens.length, 1);
    const viaApi = apiTokens[0]!;
    assert.deepEqual(Object.keys(viaApi).sort(), ['createdAt', 'email', 'expiresAt', 'id', 'kind', 'lastUsedAt', 'name']);
    const same = opTokens.find((t) => t.id === viaApi.id);
    assert.ok(same, `the operator's list has ${String(viaApi.id)} under "id"`);
    // The same fields with the same values (the operator's list also keeps revoked tokens: revokedAt).
    const { revokedAt, lastUsedAt, ...rest } = same;
    const { lastUsedAt: apiLastUsed, ...apiRest } = viaApi;
    assert.deepEqual(rest, apiRest);
    assert.equal(revokedAt, null);
    // lastUsedAt: the same name in both; its value may differ (the API call itself is a use of the token).
    for (const v of [lastUsedAt, apiLastUsed]) assert.ok(v === null || typeof v === 'string', `lastUsedAt: ${String(v)}`);
    for (const t of opTokens) assert.deepEqual(Object.keys(t).filter((k) => k.includes('_')), [], 'no snake_case names');
    const keys = await run(['relay', 'keys', 'list', '--data-dir', relay.dataDir, '--json']);
    assert.deepEqual(Object.keys((keys.json[0]!.keys as Record<string, unknown>[])[0]!).sort(), ['alg', 'createdAt', 'kid', 'retiredAt', 'signing']);
  });

  it('a --data-dir without a relay database is refused, and nothing is created there', async () => {
    const empty = join(tmp.path, 'not-a-relay');
    const r = await run(['relay', 'token', 'create', '--email', 'alice@example.com', '--data-dir', empty]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${empty} holds no relay database \\(tunn\\.db\\): pass the data dir your relay runs with \\(--data-dir DIR\\), or --dev for \`tunn dev\`'s`));
    assert.equal(existsSync(empty), false, 'no dir, database or secret.key made');
    assert.equal((await run(['relay', 'keys', 'list', '--data-dir', empty])).code, 1);
  });
});

describe('domain delete at a terminal', () => {
  /** Runs the CLI under `script`, so its stdin and stderr are a pseudo-terminal; `answer` is typed into it. */
  function underPty(args: string[], answer: string): Promise<{ code: number | null; out: string }> {
    const cmd = [NODE, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, ...env, TUNN_TOKEN: 'not-a-real-token' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end(answer);
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
  }

  it('asks before deleting; no is no, yes goes on to the relay; not asked with --yes', async () => {
    // Port 1 on loopback: nothing listens, so a request that was sent fails with "cannot reach".
    const relayArgs = ['domain', 'delete', 'tunn.example.org', '--relay', 'https://127.0.0.1:1'];
    const no = await underPty(relayArgs, 'n\n');
    assert.equal(no.code, 1);
    assert.match(no.out, /Delete tunn\.example\.org and its certificate\? Tunnels on it go offline, and those you shared it with lose it\. \[y\/N\]/);
    assert.match(no.out, /tunn\.example\.org not deleted \(pass --yes to skip this question\)/);
    assert.doesNotMatch(no.out, /cannot reach/);
    const yes = await underPty(relayArgs, 'y\n');
    assert.match(yes.out, /\[y\/N\][^]*cannot reach https:\/\/127\.0\.0\.1:1/);
    const skip = await underPty([...relayArgs, '--yes'], '');
    assert.doesNotMatch(skip.out, /\[y\/N\]/);
    assert.match(skip.out, /cannot reach https:\/\/127\.0\.0\.1:1/);
  });
});

describe('tunn trust in Chromium', () => {
  let relay: RelayHandle;
  const home = join(tmp.path, 'browser-home');
  before(async () => {
    relay = await startRelay();
    // A throwaway HOME with Chromium's NSS database: never the machine's own.
    mkdirSync(join(home, '.pki/nssdb'), { recursive: true });
    execFileSync('certutil', ['-N', '--empty-password', '-d', `sql:${join(home, '.pki/nssdb')}`]);
  });
  after(async () => {
    await relay?.stop();
  });

  async function visit(): Promise<string> {
    const browser = await launchBrowser({ env: { HOME: home } });
    try {
      const page = await browser.newPage();
      const res = await page.goto(`${relay.url}/login`);
      return `${res?.status()} ${(await res?.securityDetails())?.issuer ?? ''}`;
    } catch (err) {
      return (err as Error).message;
    } finally {
      await browser.close();
    }
  }

  it('after `tunn trust` the dev relay\'s HTTPS loads with no warning; after `tunn untrust` it is refused again', async () => {
    const trusted = await run(['trust', '--no-system', '--data-dir', relay.dataDir], { HOME: home });
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.match(trusted.stdout, new RegExp(`browser database ${join(home, '.pki/nssdb').replace(/[.]/g, '\\.')}`));
    assert.match(await visit(), /^200 tunn dev CA for tunn\.localhost/);
    const untrusted = await run(['untrust', '--no-system', '--data-dir', relay.dataDir], { HOME: home });
    assert.equal(untrusted.code, 0, untrusted.stderr);
    assert.match(await visit(), /ERR_CERT_AUTHORITY_INVALID/);
  });
});

describe('the README in a clone', () => {
  it('.gitignore covers every example data dir and token file the README writes', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const dirs = [...readme.matchAll(/--data-dir (\.\/[\w.-]+)/g)].map((m) => m[1]!);
    const tokens = [...readme.matchAll(/> ([\w.-]+\.token)\b/g)].map((m) => m[1]!);
    const paths = [...new Set([...dirs.map((d) => `${d}/tunn.db`), ...tokens, './.tunn/relay/tunn.db', './tunn-data/secret.key'])];
    assert.ok(dirs.includes('./relay-data') && tokens.includes('alice.token'), JSON.stringify({ dirs, tokens }));
    const r = spawnSync('git', ['check-ignore', '--no-index', ...paths], { cwd: ROOT, encoding: 'utf8' });
    assert.deepEqual(r.stdout.trim().split('\n').sort(), paths.sort(), `not ignored: ${paths.filter((p) => !r.stdout.includes(p)).join(', ')}`);
  });
});

