import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startCli, startAgent, startRelay, type RelayHandle } from '../test/e2e/harness.ts';
import { startPostgres } from '../test/support/postgres.ts';

// `npm run bench -- --cluster` (issue 14): two relays on one throwaway PostgreSQL, an agent on
// relay A. The same visitor load (wrk c50, one bulk download) through A, which holds the tunnel,
// and through B, which carries each connection to A over the relay link. On one 2-core machine
// the second relay competes for the same cores, so the figures that matter are the CPU each
// relay spends per request (/proc/<pid>/stat utime + stime over the run) and the req/s ratio.

const exec = promisify(execFile);

interface PathResult {
  c50rps: number;
  errors: number;
  /** CPU (user + system) per request during the c50 run, µs: relay A, relay B. */
  cpuUsPerReqA: number;
  cpuUsPerReqB: number;
  downloadMiBs: number;
}

export interface ClusterBench {
  holding: PathResult;
  forwarding: PathResult;
}

function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": utime is field 14, stime 15 → indexes 11 and 12 (clock ticks of 10 ms).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function wrkTls(url: string, seconds: number, script: string): Promise<{ rps: number; requests: number; errors: number }> {
  const { stdout } = await exec('wrk', ['-t', '1', '-c', '50', '-d', `${seconds}s`, '--timeout', '10s', '-s', script, url], { maxBuffer: 1 << 20 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  return { rps, requests, errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) };
}

async function download(host: string, r: RelayHandle, bytes: number): Promise<number> {
  const { stdout } = await exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{speed_download} %{size_download} %{http_code}', '--cacert', r.caPath, '--resolve', `${host}:${r.httpsPort}:127.0.0.1`, `https://${host}:${r.httpsPort}/bytes/${bytes}`], { maxBuffer: 1 << 20 });
  const [speed, size, code] = stdout.trim().split(' ');
  if (code !== '200' || Number(size) !== bytes) throw new Error(`curl download of ${host} through ${r.url}: HTTP ${code}, ${size} bytes of ${bytes}`);
  return Number(speed) / 1024 ** 2;
}

async function measure(visitorOn: RelayHandle, host: string, a: RelayHandle, b: RelayHandle, o: { seconds: number; bulk: number; script: string }): Promise<PathResult> {
  const url = `https://${host}:${visitorOn.httpsPort}/hello`;
  await wrkTls(url, 2, o.script); // warm-up (JIT, link streams, TLS)
  const [pa, pb] = [a.proc.child.pid!, b.proc.child.pid!];
  const [a0, b0] = [cpuUs(pa), cpuUs(pb)];
  const w = await wrkTls(url, o.seconds, o.script);
  const n = Math.max(1, w.requests);
  return { c50rps: w.rps, errors: w.errors, cpuUsPerReqA: (cpuUs(pa) - a0) / n, cpuUsPerReqB: (cpuUs(pb) - b0) / n, downloadMiBs: await download(host, visitorOn, o.bulk) };
}

/** Starts PostgreSQL, relays A and B and an agent on A; measures both paths; stops everything it started. */
export async function benchCluster(o: { seconds: number; bulkBytes: number; originPort: number; tmp: string; cleanups: (() => Promise<void> | void)[]; log: (m: string) => void }): Promise<ClusterBench> {
  o.log('cluster: PostgreSQL, relays A and B, an agent on A');
  const pg = await startPostgres();
  o.cleanups.push(() => pg.stop());
  const storeFile = join(o.tmp, 'cluster-store-url');
  const secretFile = join(o.tmp, 'cluster.key');
  writeFileSync(storeFile, (await pg.createDatabase()) + '\n', { mode: 0o600 });
  writeFileSync(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const env = { TUNN_SECRET_KEY: randomBytes(32).toString('hex') };
  const relays: RelayHandle[] = [];
  for (let i = 0; i < 2; i++) {
    // One after another: the first creates the schema and the sealing canary.
    const r = await startRelay({ extra: ['--store-file', storeFile, '--node-url', `https://127.0.0.1:${await freePort()}`, '--cluster-secret-file', secretFile], env });
    o.cleanups.push(() => r.stop());
    relays.push(r);
  }
  const [a, b] = relays as [RelayHandle, RelayHandle];
  const tok = startCli(['relay', 'token', 'create', '--email', 'bench@example.com', '--store-file', storeFile, '--data-dir', join(o.tmp, 'cluster-token'), '--json'], { env });
  const token = String((await tok.waitFor((l) => l.event === 'token')).token);
  await tok.exited;
  const agent = await startAgent(a, token, o.originPort, ['-n', 'bench-cluster', '--public', '--quiet', '--no-inspect']);
  o.cleanups.push(() => agent.stop());
  const script = join(o.tmp, 'cluster-lookup-loopback.lua');
  writeFileSync(script, 'local resolve = wrk.lookup\nwrk.lookup = function(host, service) return resolve("127.0.0.1", service) end\n');
  const m = { seconds: o.seconds, bulk: o.bulkBytes, script };
  o.log('cluster: visitor on the holding relay A');
  const holding = await measure(a, agent.host, a, b, m);
  o.log('cluster: visitor on the forwarding relay B');
  const forwarding = await measure(b, agent.host, a, b, m);
  return { holding, forwarding };
}

/** The table rows: metric, visitor on A (holder), visitor on B (forwards to A), B/A. */
export function clusterRows(r: ClusterBench, bulkMiB: number, fmt: (n: number, d?: number) => string, ratio: (a: number, b: number) => string): string[][] {
  const h = r.holding;
  const f = r.forwarding;
  const total = (p: PathResult): number => p.cpuUsPerReqA + p.cpuUsPerReqB;
  return [
    ['cluster, agent on relay A (issue 14)', 'visitor on A (holds)', 'visitor on B (forwards)', 'B/A'],
    ['req/s c50 (HTTPS)', fmt(h.c50rps), fmt(f.c50rps), ratio(f.c50rps, h.c50rps)],
    ['relay A CPU µs per request', fmt(h.cpuUsPerReqA, 1), fmt(f.cpuUsPerReqA, 1), ratio(f.cpuUsPerReqA, h.cpuUsPerReqA)],
    ['relay B CPU µs per request', fmt(h.cpuUsPerReqB, 1), fmt(f.cpuUsPerReqB, 1), ''],
    ['relays A+B CPU µs per request', fmt(total(h), 1), fmt(total(f), 1), ratio(total(f), total(h))],
    [`download ${bulkMiB} MiB, MiB/s`, fmt(h.downloadMiBs), fmt(f.downloadMiBs), ratio(f.downloadMiBs, h.downloadMiBs)],
    ['errors c50', String(h.errors), String(f.errors), ''],
  ];
}
