import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { createToken, startAgent, startRelay, type AgentHandle, type RelayHandle } from '../test/e2e/harness.ts';
import { agentTlsRows, benchAgentTls } from './agent-tls.ts';
import { benchCluster, clusterRows } from './cluster.ts';
import { benchKinds, onlySections, type Section } from './kinds.ts';
import { kindsText, machineInfo, writeOut } from './report.ts';
import { sshForward, startSshd } from './ssh.ts';

// `npm run bench`: tunn vs direct vs OpenSSH `ssh -R`, in one run on one machine (issue 2).
// Not a test and not run by CI. Needs wrk, curl, sshd and ssh on the PATH (Debian: wrk,
// curl, openssh-server, openssh-client). Writes bench/out/<timestamp>.json and prints a table.
//
// Paths: direct = load generator → origin. tunn = load generator → relay's plain HTTP port
// (relay --dev) → agent over HTTPS/TLS with ALPN tunn/1 (as users run it) → origin; the agent
// runs with --quiet (no per-request log) and --no-inspect; "inspector on" is a second agent on the
// same relay with the inspector capturing every request (issue 16: on must reach 90 % of off). ssh = load generator → sshd's -R listener → ssh
// client → origin (a throwaway sshd on loopback, default cipher). floor = the same design with
// nothing of tunn's own work (bench/floor.ts): what the data-plane design costs on this machine.
// HTTPS: TLS at the relay vs at the agent (`--terminate-at agent`, bench/agent-tls.ts, issue 12).
// `--cluster` runs only the cluster comparison (bench/cluster.ts, issue 14): two relays on one
// throwaway PostgreSQL, a visitor on the holding relay vs on a forwarding one.

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const NODE = process.execPath;
const GiB = 1024 ** 3;
const QUICK = process.argv.includes('--quick');
const DUR = QUICK ? 3 : 6; // seconds per wrk run
const BULK = QUICK ? 256 * 1024 ** 2 : GiB;
// wrk threads. One, as in research/data-plane-measurements.md (where the targets come from): on
// two cores a second wrk thread takes CPU from the very processes being measured.
const WRK_THREADS = Number(process.argv.find((a) => a.startsWith('--wrk-threads='))?.split('=')[1] ?? 1);
const CONNS = [1, 50, 1000];
const MEM_STEPS = [1000, 5000];

type PathName = 'direct' | 'tunn' | 'ssh' | 'floor' | 'tunn-inspect';

interface Target {
  name: PathName;
  port: number;
  host: string;
}

interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

const cleanups: (() => Promise<void> | void)[] = [];

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

async function startOrigin(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(NODE, [join(ROOT, 'bench/origin.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => void child.kill());
  const line = await new Promise<string>((res) => createInterface({ input: child.stdout! }).once('line', res));
  return { port: Number(line), child };
}

/** A throwaway sshd on a free loopback port and `ssh -N -R` to it; returns the forwarded port. */
async function startSshReverse(originPort: number): Promise<{ port: number; pids: () => Promise<number[]> }> {
  const sshd = await startSshd(cleanups);
  const ssh = await sshForward(sshd, '-R', originPort, cleanups);
  // sshd forks a per-connection process; measure the ssh client and every sshd under the listener.
  const pids = async (): Promise<number[]> => {
    const { stdout } = await exec('pgrep', ['-P', String(sshd.pid)]).catch(() => ({ stdout: '' }));
    const kids = stdout.split(/\s+/).filter(Boolean).map(Number);
    const grand: number[] = [];
    for (const k of kids) {
      const r = await exec('pgrep', ['-P', String(k)]).catch(() => ({ stdout: '' }));
      grand.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    return [ssh.pid, ...kids, ...grand];
  };
  return { port: ssh.port, pids };
}

/** bench/floor.ts: the design's minimal forwarder (relay + agent over TLS); returns its public port. */
async function startFloor(originPort: number, dir: string): Promise<number> {
  const ca = join(dir, 'floor-ca.pem');
  const relay = spawn(NODE, [join(ROOT, 'bench/floor.ts'), 'relay', ca], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => void relay.kill());
  const line = await new Promise<string>((res) => createInterface({ input: relay.stdout! }).once('line', res));
  const [agentPort, publicPort] = line.split(' ').map(Number) as [number, number];
  const agent = spawn(NODE, [join(ROOT, 'bench/floor.ts'), 'agent', String(agentPort), String(originPort), ca], { stdio: 'inherit' });
  cleanups.push(() => void agent.kill());
  for (let i = 0; i < 100; i++) {
    const { stdout } = await exec('curl', ['-s', `http://127.0.0.1:${publicPort}/hello`]).catch(() => ({ stdout: '' }));
    if (stdout === 'hello') return publicPort;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('bench/floor.ts did not start forwarding');
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

async function wrk(t: Target, conns: number, seconds: number): Promise<WrkResult> {
  const threads = Math.min(WRK_THREADS, conns);
  const args = ['-t', String(threads), '-c', String(conns), '-d', `${seconds}s`, '--latency', '--timeout', '10s', '-H', `Host: ${t.host}`, `http://127.0.0.1:${t.port}/hello`];
  const { stdout } = await exec('wrk', args, { maxBuffer: 1 << 20 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const p50ms = toMs(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const p99ms = toMs(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p50ms, p99ms, errors };
}

/** curl: MiB/s of one transfer (download of N bytes, or upload of a sparse file). */
async function curlMiBs(t: Target, kind: 'down' | 'up', bytes: number, file: string): Promise<number> {
  const base = ['-sS', '-o', '/dev/null', '-w', '%{speed_download} %{speed_upload} %{size_download} %{size_upload} %{http_code}', '-H', `Host: ${t.host}`, '-H', 'Expect:'];
  const args = kind === 'down' ? [...base, `http://127.0.0.1:${t.port}/bytes/${bytes}`] : [...base, '-X', 'POST', '--data-binary', `@${file}`, `http://127.0.0.1:${t.port}/upload`];
  if (kind === 'up') args.splice(args.indexOf('--data-binary'), 2, '-T', file);
  const { stdout } = await exec('curl', args, { maxBuffer: 1 << 20 });
  const [down, up, sd, su, code] = stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl ${kind} via ${t.name}: HTTP ${code}`);
  const n = kind === 'down' ? Number(sd) : Number(su);
  if (n !== bytes) throw new Error(`curl ${kind} via ${t.name}: ${n} bytes, expected ${bytes}`);
  return Number(kind === 'down' ? down : up) / 1024 ** 2;
}

/** 16 sequential downloads on ONE keep-alive connection (curl reuses it): the "raw stream" figure. */
async function keepAliveStream(t: Target, total: number): Promise<number> {
  const n = 16;
  const urls = Array.from({ length: n }, () => `http://127.0.0.1:${t.port}/bytes/${total / n}`);
  const start = performance.now();
  const { stdout, stderr } = await exec('curl', ['-sS', '-v', '-H', `Host: ${t.host}`, ...urls.flatMap((u) => ['-o', '/dev/null', u])], { maxBuffer: 1 << 24 });
  const secs = (performance.now() - start) / 1000;
  const reused = (stderr.match(/Re-using existing connection|Reusing existing/g) ?? []).length;
  if (reused < n - 1) throw new Error(`keep-alive stream via ${t.name}: connection reused ${reused} times, expected ${n - 1}${stdout}`);
  return total / 1024 ** 2 / secs;
}

async function rssKiB(pid: number): Promise<number> {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Opens `n` keep-alive connections, each completing one /hello request, and keeps them open. */
async function openConnections(t: Target, n: number, into: net.Socket[]): Promise<void> {
  const req = `GET /hello HTTP/1.1\r\nHost: ${t.host}\r\n\r\n`;
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((res, rej) => {
      const s = net.connect(t.port, '127.0.0.1');
      let buf = '';
      s.setEncoding('latin1');
      s.once('connect', () => s.write(req));
      const onData = (d: string): void => {
        buf += d;
        if (buf.includes('\r\n\r\n') && buf.endsWith('hello')) {
          s.removeListener('data', onData);
          into.push(s);
          res();
        }
      };
      s.on('data', onData);
      s.once('error', rej);
    });
  await Promise.all(
    Array.from({ length: 200 }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 2500));
}

async function memory(t: Target, pids: () => Promise<number[]>): Promise<Record<string, number[]>> {
  const sample = async (): Promise<number[]> => Promise.all((await pids()).map(rssKiB));
  const out: Record<string, number[]> = {};
  await settle();
  out.idle = await sample();
  const socks: net.Socket[] = [];
  let opened = 0;
  for (const n of MEM_STEPS) {
    await openConnections(t, n - opened, socks);
    opened = n;
    await settle();
    out[String(n)] = await sample();
  }
  for (const s of socks) s.destroy();
  return out;
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : '–';
}

function fmt(n: number, d = 0): string {
  return Number.isFinite(n) ? n.toFixed(d) : '–';
}

async function main(): Promise<void> {
  for (const bin of ['wrk', 'curl', 'ssh', 'ssh-keygen']) {
    await exec('which', [bin]).catch(() => {
      throw new Error(`${bin} is not installed (Debian: apt-get install -y wrk curl openssh-server openssh-client)`);
    });
  }
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'tunn-bench-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  const sections = onlySections(process.argv) ?? new Set<Section>(['http', 'tcp', 'udp']);
  const runKinds = async (): Promise<Awaited<ReturnType<typeof benchKinds>> | undefined> =>
    sections.has('tcp') || sections.has('udp') ? benchKinds({ quick: QUICK, seconds: DUR, bulkBytes: BULK, sections, cleanups, tmp, log }) : undefined;
  if (!sections.has('http')) {
    const k = (await runKinds())!;
    writeOut(started, { started: started.toISOString(), finished: new Date().toISOString(), quick: QUICK, secondsPerRun: DUR, bulkBytes: BULK, machine: machineInfo(), results: k.results, targets: k.targets }, `${kindsText(k)}`);
    return;
  }
  if (process.argv.includes('--cluster')) {
    const origin = await startOrigin();
    const c = await benchCluster({ seconds: DUR, bulkBytes: BULK, originPort: origin.port, tmp, cleanups, log });
    const rows = clusterRows(c, BULK / 1024 ** 2, fmt, ratio);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    const table = rows.map((row, j) => {
      const line = `| ${row.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
      return j === 0 ? `${line}\n|${widths.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
    });
    writeOut(started, { started: started.toISOString(), finished: new Date().toISOString(), quick: QUICK, secondsPerWrk: DUR, bulkBytes: BULK, machine: machineInfo(), results: { cluster: c } }, table.join('\n'));
    return;
  }
  const upload = join(tmp, 'upload.bin');
  await exec('truncate', ['-s', String(BULK), upload]);

  log('starting origin, relay, agent, sshd + ssh -R, design floor');
  const origin = await startOrigin();
  const relay: RelayHandle = await startRelay();
  cleanups.push(() => relay.stop());
  const token = await createToken(relay, 'bench@example.com');
  const agent: AgentHandle = await startAgent(relay, token, origin.port, ['--public', '--quiet', '--no-inspect']);
  cleanups.push(() => agent.stop());
  await agent.proc.waitFor((l) => /online \(2\/2 sessions\)/.test(String(l.detail ?? l.message ?? '')), 10_000).catch(() => undefined);
  const inspectAgent: AgentHandle = await startAgent(relay, token, origin.port, ['--public', '--quiet', '-n', 'bench-inspect', '--inspect', '127.0.0.1:0']);
  cleanups.push(() => inspectAgent.stop());
  await inspectAgent.proc.waitFor((l) => /online \(2\/2 sessions\)/.test(String(l.detail ?? l.message ?? '')), 10_000).catch(() => undefined);
  const ssh = await startSshReverse(origin.port);
  const floorPort = await startFloor(origin.port, tmp);

  const targets: Target[] = [
    { name: 'direct', port: origin.port, host: `127.0.0.1:${origin.port}` },
    { name: 'tunn', port: relay.httpPort, host: new URL(agent.httpUrl).host },
    { name: 'ssh', port: ssh.port, host: `127.0.0.1:${ssh.port}` },
    { name: 'floor', port: floorPort, host: `127.0.0.1:${floorPort}` },
  ];

  const results: Record<string, Record<string, unknown>> = { direct: {}, tunn: {}, ssh: {}, floor: {} };
  for (const t of targets) {
    // Warm-up (JIT, TLS session, keep-alive pools), at both the load shapes measured first.
    await wrk(t, 50, 2);
    await wrk(t, 1, 2);
  }

  for (const c of CONNS) {
    for (const t of targets) {
      log(`wrk ${t.name} c${c}`);
      results[t.name]![`c${c}`] = await wrk(t, c, DUR);
    }
  }
  for (const t of targets) {
    log(`bulk ${t.name}`);
    results[t.name]!.downloadMiBs = await curlMiBs(t, 'down', BULK, upload);
    results[t.name]!.uploadMiBs = await curlMiBs(t, 'up', BULK, upload);
    results[t.name]!.keepAliveStreamMiBs = await keepAliveStream(t, BULK);
  }

  // Inspector on vs off (issue 16): the same relay, an agent whose inspector captures everything.
  const inspected: Target = { name: 'tunn-inspect', port: relay.httpPort, host: new URL(inspectAgent.httpUrl).host };
  log('inspector on: wrk c50, bulk');
  await wrk(inspected, 50, 2);
  const inspectOn = { c50: await wrk(inspected, 50, DUR), downloadMiBs: await curlMiBs(inspected, 'down', BULK, upload), uploadMiBs: await curlMiBs(inspected, 'up', BULK, upload) };
  results['tunn-inspect'] = inspectOn;
  await inspectAgent.stop();

  // HTTPS with TLS at the relay vs at the agent (issue 12): the relay's CPU per request should fall.
  log('HTTPS: TLS at the relay vs at the agent');
  const tlsBench = await benchAgentTls(relay, token, origin.port, agent, tmp, { seconds: DUR, bulk: BULK });
  cleanups.push(tlsBench.stop);
  results['agent-tls'] = { ...tlsBench.result };
  await tlsBench.stop();

  // Memory on a fresh relay/agent pair (fresh sshd connection too), so earlier load does not count.
  log('memory: fresh relay and agent');
  await agent.stop();
  await relay.stop();
  const relay2 = await startRelay();
  cleanups.push(() => relay2.stop());
  const token2 = await createToken(relay2, 'bench@example.com');
  const agent2 = await startAgent(relay2, token2, origin.port, ['--public', '--quiet', '--no-inspect']);
  cleanups.push(() => agent2.stop());
  await agent2.proc.waitFor((l) => /online \(2\/2 sessions\)/.test(String(l.detail ?? l.message ?? '')), 10_000).catch(() => undefined);
  const tunnMem = await memory({ name: 'tunn', port: relay2.httpPort, host: new URL(agent2.httpUrl).host }, async () => [relay2.proc.child.pid!, agent2.proc.child.pid!]);
  // ssh: sum of ssh client + sshd processes (the per-connection work happens in one sshd child).
  const sshTotal = async (): Promise<number> => (await Promise.all((await ssh.pids()).map(rssKiB))).reduce((a, b) => a + b, 0);
  const sshMemory: Record<string, number> = {};
  {
    await settle();
    sshMemory.idle = await sshTotal();
    const socks: net.Socket[] = [];
    let opened = 0;
    for (const n of MEM_STEPS) {
      await openConnections(targets[2]!, n - opened, socks);
      opened = n;
      await settle();
      sshMemory[String(n)] = await sshTotal();
    }
    for (const s of socks) s.destroy();
  }

  const r = results as Record<PathName, Record<string, WrkResult | number>>;
  const w = (p: PathName, c: number): WrkResult => r[p][`c${c}`] as WrkResult;
  const n = (p: PathName, k: string): number => r[p][k] as number;
  const [relayIdle, agentIdle] = tunnMem.idle!;
  const perConn = (i: 0 | 1, step: number): number => ((tunnMem[String(step)]![i]! - tunnMem.idle![i]!) / step);
  const sshPerConn = (step: number): number => (sshMemory[String(step)]! - sshMemory.idle!) / step;

  const rows: string[][] = [['metric', 'direct', 'tunn', 'ssh -R', 'floor', 'tunn/direct', 'tunn/ssh', 'floor/direct']];
  const row = (label: string, v: (p: PathName) => number, d = 0): string[] => [
    label,
    fmt(v('direct'), d),
    fmt(v('tunn'), d),
    fmt(v('ssh'), d),
    fmt(v('floor'), d),
    ratio(v('tunn'), v('direct')),
    ratio(v('tunn'), v('ssh')),
    ratio(v('floor'), v('direct')),
  ];
  for (const c of CONNS) {
    rows.push(row(`req/s c${c}`, (p) => w(p, c).rps));
    rows.push(row(`p50 ms c${c}`, (p) => w(p, c).p50ms, 3));
    rows.push(row(`p99 ms c${c}`, (p) => w(p, c).p99ms, 3));
    rows.push([`errors c${c}`, ...(['direct', 'tunn', 'ssh', 'floor'] as const).map((p) => String(w(p, c).errors)), '', '', '']);
  }
  const mib = BULK / 1024 ** 2;
  for (const [k, label] of [
    ['downloadMiBs', `download ${mib} MiB, MiB/s`],
    ['uploadMiBs', `upload ${mib} MiB, MiB/s`],
    ['keepAliveStreamMiBs', `${mib} MiB on 1 keep-alive conn, MiB/s`],
  ] as const) {
    rows.push(row(label, (p) => n(p, k)));
  }
  rows.push(['RSS idle MiB (relay / agent | ssh+sshd)', '', `${fmt(relayIdle! / 1024, 1)} / ${fmt(agentIdle! / 1024, 1)}`, fmt(sshMemory.idle! / 1024, 1), '', '', '', '']);
  for (const step of MEM_STEPS) {
    rows.push([
      `RSS ${step} open conns MiB`,
      '',
      `${fmt(tunnMem[String(step)]![0]! / 1024, 1)} / ${fmt(tunnMem[String(step)]![1]! / 1024, 1)}`,
      fmt(sshMemory[String(step)]! / 1024, 1),
      '',
      '',
      '',
      '',
    ]);
    rows.push([`KiB per open conn @${step}`, '', `${fmt(perConn(0, step), 1)} / ${fmt(perConn(1, step), 1)}`, fmt(sshPerConn(step), 1), '', '', '', '']);
  }

  const inspectRows: string[][] = [
    ['inspector (issue 16)', 'off', 'on', 'on/off'],
    ['req/s c50', fmt(w('tunn', 50).rps), fmt(inspectOn.c50.rps), ratio(inspectOn.c50.rps, w('tunn', 50).rps)],
    [`download ${BULK / 1024 ** 2} MiB, MiB/s`, fmt(n('tunn', 'downloadMiBs')), fmt(inspectOn.downloadMiBs), ratio(inspectOn.downloadMiBs, n('tunn', 'downloadMiBs'))],
    [`upload ${BULK / 1024 ** 2} MiB, MiB/s`, fmt(n('tunn', 'uploadMiBs')), fmt(inspectOn.uploadMiBs), ratio(inspectOn.uploadMiBs, n('tunn', 'uploadMiBs'))],
    ['errors c50', String(w('tunn', 50).errors), String(inspectOn.c50.errors), ''],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const table = rows.map((row, j) => {
    const line = `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    return j === 0 ? `${line}\n|${widths.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
  });

  const inspectWidths = inspectRows[0]!.map((_, i) => Math.max(...inspectRows.map((row) => row[i]!.length)));
  const inspectTable = inspectRows.map((row, j) => {
    const line = `| ${row.map((c, i) => c.padEnd(inspectWidths[i]!)).join(' | ')} |`;
    return j === 0 ? `${line}\n|${inspectWidths.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
  });

  const tlsRows = agentTlsRows(tlsBench.result, BULK / 1024 ** 2, fmt, ratio);
  const tlsWidths = tlsRows[0]!.map((_, i) => Math.max(...tlsRows.map((row) => row[i]!.length)));
  const tlsTable = tlsRows.map((row, j) => {
    const line = `| ${row.map((c, i) => c.padEnd(tlsWidths[i]!)).join(' | ')} |`;
    return j === 0 ? `${line}\n|${tlsWidths.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
  });

  const targetsMet = {
    'req/s c50 ≥ 1.2× ssh -R': w('tunn', 50).rps >= 1.2 * w('ssh', 50).rps,
    'req/s c50 ≥ 0.6× direct': w('tunn', 50).rps >= 0.6 * w('direct', 50).rps,
    'download MiB/s ≥ 1.0× ssh -R': n('tunn', 'downloadMiBs') >= n('ssh', 'downloadMiBs'),
    'upload MiB/s ≥ 1.0× ssh -R': n('tunn', 'uploadMiBs') >= n('ssh', 'uploadMiBs'),
    'p50 c1 within 0.15 ms of direct': w('tunn', 1).p50ms - w('direct', 1).p50ms <= 0.15,
    'p99 c1 < 1 ms': w('tunn', 1).p99ms < 1,
    '≤ 16 KiB per open conn (relay and agent, @5000)': perConn(0, 5000) <= 16 && perConn(1, 5000) <= 16,
    'zero errors': CONNS.every((c) => w('tunn', c).errors === 0),
    // Issue 9's targets.
    'req/s c1000 ≥ 1.2× ssh -R': w('tunn', 1000).rps >= 1.2 * w('ssh', 1000).rps,
    'relay idle RSS ≤ 96 MiB': relayIdle! / 1024 <= 96,
    'inspector on: req/s c50 ≥ 0.9× off (issue 16)': inspectOn.c50.rps >= 0.9 * w('tunn', 50).rps,
    'inspector on: download MiB/s ≥ 0.9× off (issue 16)': inspectOn.downloadMiBs >= 0.9 * n('tunn', 'downloadMiBs'),
    'inspector on: upload MiB/s ≥ 0.9× off (issue 16)': inspectOn.uploadMiBs >= 0.9 * n('tunn', 'uploadMiBs'),
    'inspector on: zero errors (issue 16)': inspectOn.c50.errors === 0,
    'TLS at the agent: relay CPU per request below TLS at the relay (issue 12)': tlsBench.result.agentTerminated.relayCpuUsPerReq < tlsBench.result.relayTerminated.relayCpuUsPerReq,
    'TLS at the agent: zero errors (issue 12)': tlsBench.result.agentTerminated.errors === 0,
  };
  const machine = machineInfo();
  // The TCP and UDP sections (issue 11) run after the HTTP ones, on their own relay.
  await agent2.stop();
  await relay2.stop();
  const kinds = await runKinds();
  const out = { started: started.toISOString(), finished: new Date().toISOString(), quick: QUICK, wrkThreads: WRK_THREADS, secondsPerWrk: DUR, bulkBytes: BULK, machine, results: { ...results, ...kinds?.results }, memoryKiB: { tunn: { relayAgent: tunnMem }, ssh: sshMemory }, targets: { ...targetsMet, ...kinds?.targets } };
  writeOut(started, out, `${kinds ? kindsText(kinds) : ''}\n${table.join('\n')}\n\n${inspectTable.join('\n')}\n\n${tlsTable.join('\n')}\n\nTargets (issues 2, 9, 12 and 16):\n${Object.entries(targetsMet).map(([k, v]) => `- ${v ? 'met    ' : 'MISSED '} ${k}`).join('\n')}\n\nThe design floor (bench/floor.ts, no tunn logic) in this run: c50 ${ratio(w('floor', 50).rps, w('direct', 50).rps)} direct, tunn ${ratio(w('tunn', 50).rps, w('floor', 50).rps)} of the floor; p50 c1 +${fmt(w('floor', 1).p50ms - w('direct', 1).p50ms, 3)} ms over direct (tunn +${fmt(w('tunn', 1).p50ms - w('direct', 1).p50ms, 3)} ms). c1000: floor ${ratio(w('floor', 1000).rps, w('ssh', 1000).rps)} ssh -R, tunn ${ratio(w('tunn', 1000).rps, w('floor', 1000).rps)} of the floor.`);
}

try {
  await main();
} finally {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
}
process.exit(0);
