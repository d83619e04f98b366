import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { NODE, ROOT, request, tmpDir } from './harness.ts';

// Installing tunn as users do: `npm pack` in the repo, `npm install -g` of the tarball into a
// throwaway prefix, then `tunn` by name from another directory. The package must run without
// the sources (Node strips no types under node_modules) and without devDependencies. The same
// installed package stands in for the container image (the Dockerfile's ENTRYPOINT and ENV) and
// the systemd unit (deploy/tunn-relay.service), since neither Docker nor systemd runs here.

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const work = tmpDir('tunn-package-');
const prefix = join(work.path, 'prefix');
const home = join(work.path, 'home'); // the compile cache goes here, not into the user's HOME
const elsewhere = join(work.path, 'elsewhere'); // "any directory": not the repo, not the prefix
const children: ChildProcess[] = [];
let packed: { filename: string; files: { path: string }[] };

/** The environment of a user with Node 24 first on PATH and the prefix's bin/ after it. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // npm_* variables from an enclosing `npm test` would reconfigure the inner npm (prefix, global).
  // XDG_CACHE_HOME and NODE_COMPILE_CACHE would move the compile cache out of this HOME.
  const drop = (k: string) => k.toLowerCase().startsWith('npm_') || k === 'XDG_CACHE_HOME' || k === 'NODE_COMPILE_CACHE';
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop(k)));
  return { ...base, HOME: home, PATH: [join(prefix, 'bin'), dirname(NODE), process.env.PATH].join(delimiter), ...extra };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: opts.cwd ?? elsewhere, env: opts.env ?? userEnv(), encoding: 'utf8', timeout: 240_000 });
}

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  return run('npm', ['--no-audit', '--no-fund', '--no-update-notifier', ...args], { cwd });
}

/** Starts a command from the user's PATH and resolves with its first JSON line matching `pred`. */
function startJson(cmd: string, args: string[], env: NodeJS.ProcessEnv, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const child = spawn(cmd, args, { cwd: elsewhere, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching line from ${cmd} ${args.join(' ')} in 60 s; stderr: ${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited (${code}); stderr: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (pred(obj)) {
        clearTimeout(timer);
        resolve(obj);
      }
    });
  });
}

before(
  () => {
    for (const d of [prefix, home, elsewhere]) mkdirSync(d, { recursive: true });
    const pack = npm(['pack', '--json', '--pack-destination', work.path], ROOT);
    assert.equal(pack.status, 0, `npm pack failed: ${pack.stderr}`);
    packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;
    const tarball = join(work.path, packed.filename);
    // From npm's cache alone when it holds every dependency (after `npm ci`, a CI machine does);
    // otherwise the registry is asked only for what the cache lacks.
    let install = npm(['install', '-g', '--prefix', prefix, '--offline', tarball], elsewhere);
    if (install.status !== 0 && /ENOTCACHED/.test(install.stderr)) install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', tarball], elsewhere);
    assert.equal(install.status, 0, `npm install -g ${tarball} failed: ${install.stderr}`);
  },
  { timeout: 300_000 },
);

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  work.remove();
});

describe('the npm package', { timeout: 300_000 }, () => {
  test('holds compiled JavaScript, the files the code reads beside itself, and no sources or tests', () => {
    const paths = packed.files.map((f) => f.path);
    assert.ok(paths.includes('bin/tunn.js'));
    assert.ok(paths.includes('dist/cli/main.js'));
    assert.ok(paths.includes('dist/agent/inspector/page/index.html'), 'the inspector page is read from beside its module');
    assert.ok(paths.includes('web/dist/index.html'), 'the web console, built');
    assert.ok(paths.some((p) => /^web\/dist\/assets\/index-[\w-]+\.js$/.test(p)), 'the web console\'s hashed script');
    assert.deepEqual(paths.filter((p) => !/^(bin|dist|web\/dist)\//.test(p) && !['package.json', 'README.md', 'LICENSE'].includes(p)), []);
    assert.deepEqual(paths.filter((p) => p.endsWith('.ts') || /\.test\.js$/.test(p) || /(^|\/)testing\.js$/.test(p)), []);
  });

  test('`tunn --version` runs from any directory, on the compiled files', () => {
    const installed = join(prefix, 'lib/node_modules/tunn');
    assert.ok(existsSync(join(installed, 'dist/cli/main.js')));
    assert.ok(!existsSync(join(installed, 'src')), 'the package must not depend on type stripping');
    const r = run('tunn', ['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('`tunn dev` from the installed package serves the demo page and the inspector through a tunnel', async () => {
    const ready = await startJson('tunn', ['dev', '--https-port', '0', '--http-port', '0', '--json', '--data-dir', join(work.path, 'dev')], userEnv(), (l) => l.event === 'ready');
    const res = await request(String(ready.url));
    assert.equal(res.status, 200);
    // The same page the sources serve: its heading, read from the source file.
    const title = /renderPage\(\s*'([^']+)'/.exec(readFileSync(join(ROOT, 'src/cli/demo-server.ts'), 'utf8'))![1]!;
    assert.ok(res.text.includes(title), res.text.slice(0, 300));
    // The inspector's page is a file read from beside its module (copied into dist/ by the build).
    const page = await request(String(ready.inspectUrl));
    assert.equal(page.status, 200, page.text);
    assert.match(page.text, /<title>tunn inspector<\/title>/);
    const script = await request(new URL('/app.js', String(ready.inspectUrl)).href);
    assert.equal(script.status, 200, script.text);
    // The web console, from the package's web/dist/, on the relay's own host.
    const consolePage = await request(`https://${String(ready.domain)}:${String(ready.httpsPort)}/`, { ca: readFileSync(String(ready.caPath), 'utf8') });
    assert.equal(consolePage.status, 200, consolePage.text);
    assert.match(consolePage.text, /<div id="root"><\/div>/);
  });
});

/** The last stage of the Dockerfile: its ENV, USER, VOLUME and the command a container runs. */
function imageOf(dockerfile: string): { env: Record<string, string>; user: string; volumes: string[]; command: string[] } {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stage = lines.slice(lines.findLastIndex((l) => /^FROM\s/i.test(l)));
  const arg = (kw: string) => stage.filter((l) => l.toUpperCase().startsWith(`${kw} `)).map((l) => l.slice(kw.length).trim());
  const env = Object.fromEntries(arg('ENV').flatMap((l) => l.split(/\s+/).map((kv) => kv.split('=') as [string, string])));
  const json = (kw: string) => (arg(kw).length ? (JSON.parse(arg(kw).at(-1)!) as string[]) : []);
  return { env, user: arg('USER').at(-1) ?? 'root', volumes: json('VOLUME'), command: [...json('ENTRYPOINT'), ...json('CMD')] };
}

describe('deploying the relay', { timeout: 120_000 }, () => {
  test("the Dockerfile's entry command, with its environment, runs a relay that keeps its state in the volume", async () => {
    const image = imageOf(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    assert.ok(!['', 'root', '0'].includes(image.user.split(':')[0]!), `the image runs as ${image.user}`);
    assert.ok(image.volumes.includes(image.env.TUNN_DATA_DIR!), `the data dir ${image.env.TUNN_DATA_DIR} is a volume`);
    assert.equal(image.command[0], 'tunn', 'the command is the tunn that npm install -g put on PATH');
    // What `docker run -e …` adds (a domain and its certificate), and what this shared machine
    // needs instead of the container's own network and volume (free ports, loopback, a temp dir).
    const volume = join(work.path, 'volume');
    mkdirSync(volume, { mode: 0o700 });
    const key = join(work.path, 'relay-key.pem');
    const cert = join(work.path, 'relay-cert.pem');
    const ssl = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=tunn.localhost', '-addext', 'subjectAltName=DNS:tunn.localhost,DNS:*.tunn.localhost']);
    assert.equal(ssl.status, 0, ssl.stderr);
    const env = userEnv({ ...image.env, TUNN_DATA_DIR: volume, TUNN_DOMAIN: 'tunn.localhost', TUNN_TLS_CERT: cert, TUNN_TLS_KEY: key, TUNN_HTTPS_PORT: '0', TUNN_HTTP_PORT: '0', TUNN_LISTEN: '127.0.0.1', TUNN_JSON: '1' });
    const ready = await startJson(image.command[0]!, image.command.slice(1), env, (l) => l.event === 'ready');
    assert.equal(ready.dev, false);
    const jwks = await request(`https://tunn.localhost:${Number(ready.httpsPort)}/.well-known/jwks.json`, { ca: readFileSync(cert, 'utf8') });
    assert.equal(jwks.status, 200, jwks.text);
    assert.ok((JSON.parse(jwks.text) as { keys: unknown[] }).keys.length > 0);
    for (const f of ['tunn.db', 'secret.key']) assert.equal(statSync(join(volume, f)).mode & 0o777, 0o600, `${f} in the volume`);
    // `docker stop` sends SIGTERM to the entry command (PID 1 in the container, no init).
    const relay = children.at(-1)!;
    const exited = once(relay, 'exit');
    relay.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null], 'the relay stops cleanly on SIGTERM');
    // README: `docker exec tunn tunn relay token create --email …` finds the volume through the image's ENV.
    const token = run('tunn', ['relay', 'token', 'create', '--email', 'alice@example.com'], { env: userEnv({ ...image.env, TUNN_DATA_DIR: volume }) });
    assert.equal(token.status, 0, token.stderr);
    assert.match(token.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a token');
  });

  test('the systemd unit passes systemd-analyze verify, run against the installed tunn', (t) => {
    const unit = readFileSync(join(ROOT, 'deploy/tunn-relay.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/tunn relay$/m, 'npm install -g puts tunn in /usr/local/bin');
    const state = /^StateDirectory=(\S+)$/m.exec(unit)?.[1];
    assert.match(unit, new RegExp(`^Environment=.*\\bTUNN_DATA_DIR=/var/lib/${state}\\b`, 'm'), 'the data dir is the unit state directory');
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('systemd-analyze is not installed');
    // verify checks that ExecStart is executable: point it at the tunn this test installed.
    const dir = join(work.path, 'systemd');
    mkdirSync(dir);
    const path = join(dir, 'tunn-relay.service');
    writeFileSync(path, unit.replace('ExecStart=/usr/local/bin/tunn', `ExecStart=${join(prefix, 'bin/tunn')}`));
    const r = run('systemd-analyze', ['verify', path]);
    // Unknown keys and bad values are only warnings (exit 0): any line about the unit fails.
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stderr.split('\n').filter((l) => l.includes('tunn-relay')), []);
  });
});

describe('an older Node.js', () => {
  // The message every older Node gets instead of a stack trace about `.ts` files or a missing
  // export of node:module.
  const expectMessage = (r: SpawnSyncReturns<string>, version: string) => {
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.ok(r.stderr.startsWith(`tunn needs Node.js 24 or later (you have ${version}).\n`), r.stderr);
    assert.match(r.stderr, /nvm install 24/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    assert.equal(r.stdout, '');
  };

  test('is told which Node tunn needs, from the repo and from the installed package', () => {
    // Node 24 reporting itself as 22: the check reads process.versions.node.
    const older = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"22.3.0"})';
    for (const bin of [join(ROOT, 'bin/tunn.js'), join(prefix, 'lib/node_modules/tunn/bin/tunn.js')]) {
      expectMessage(run(NODE, ['--import', older, bin, '--version']), '22.3.0');
    }
  });

  test('a real Node older than 24 (when this machine has one) gets the message too', (t) => {
    const onPath = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const old = [...onPath, '/usr/bin/node', '/usr/local/bin/node']
      .filter((p) => existsSync(p))
      .map((p) => ({ p, v: spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() }))
      .find(({ v }) => Number(v.split('.')[0]) < 24);
    if (!old) return t.skip('no Node.js older than 24 on this machine');
    expectMessage(run(old.p, [join(ROOT, 'bin/tunn.js'), '--version']), old.v);
  });
});
