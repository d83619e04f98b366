import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCa, issueLeaf } from '../src/certs/dev-ca.ts';
import { startAgent, type AgentHandle, type RelayHandle } from '../test/e2e/harness.ts';

// The agent-terminated column of `npm run bench` (issue 12): HTTPS through the relay when the
// relay terminates TLS (it parses every request head) against when the agent does (the relay
// only pipes TLS bytes). On one machine the total crypto work is the same; what should fall is
// the relay's share, measured as the relay process's CPU time per request during wrk c50.

const exec = promisify(execFile);

export interface TlsPathResult {
  c50rps: number;
  errors: number;
  /** Relay CPU (user + system) per request during the c50 run, µs. */
  relayCpuUsPerReq: number;
  downloadMiBs: number;
}

export interface AgentTlsBench {
  relayTerminated: TlsPathResult;
  agentTerminated: TlsPathResult;
}

/** The relay's CPU time so far (user + system), µs, from /proc (clock ticks of 10 ms on Linux). */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15 → indexes 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** wrk over HTTPS to `host` on the relay's port: SNI and Host are the tunnel's name, the address loopback (a Lua lookup override). */
async function wrkTls(host: string, port: number, conns: number, seconds: number, script: string): Promise<{ rps: number; requests: number; errors: number }> {
  const { stdout } = await exec('wrk', ['-t', '1', '-c', String(conns), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, `https://${host}:${port}/hello`], { maxBuffer: 1 << 20 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  return { rps, requests, errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) };
}

async function downloadTls(host: string, port: number, bytes: number, ca: string): Promise<number> {
  const { stdout } = await exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{speed_download} %{size_download} %{http_code}', '--cacert', ca, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/bytes/${bytes}`], { maxBuffer: 1 << 20 });
  const [speed, size, code] = stdout.trim().split(' ');
  if (code !== '200' || Number(size) !== bytes) throw new Error(`curl https download via ${host}: HTTP ${code}, ${size} bytes of ${bytes}`);
  return Number(speed) / 1024 ** 2;
}

async function measure(relay: RelayHandle, host: string, ca: string, seconds: number, bulk: number, script: string): Promise<TlsPathResult> {
  await wrkTls(host, relay.httpsPort, 50, 2, script); // warm-up
  const pid = relay.proc.child.pid!;
  const before = cpuUs(pid);
  const w = await wrkTls(host, relay.httpsPort, 50, seconds, script);
  const used = cpuUs(pid) - before;
  return { c50rps: w.rps, errors: w.errors, relayCpuUsPerReq: used / Math.max(1, w.requests), downloadMiBs: await downloadTls(host, relay.httpsPort, bulk, ca) };
}

/**
 * Runs both HTTPS paths on `relay` (a `--dev` relay): `relayAgent` is a public agent whose TLS the
 * relay terminates; a second agent is started here with `--terminate-at agent` and a certificate
 * from a throwaway CA.
 */
export async function benchAgentTls(relay: RelayHandle, token: string, originPort: number, relayAgent: AgentHandle, tmp: string, o: { seconds: number; bulk: number }): Promise<{ result: AgentTlsBench; stop: () => Promise<void> }> {
  const script = join(tmp, 'lookup-loopback.lua');
  writeFileSync(script, 'local resolve = wrk.lookup\nwrk.lookup = function(host, service) return resolve("127.0.0.1", service) end\n');
  const name = 'bench-e2e';
  const host = `${name}.${relay.domain}`;
  const ca = await createCa('tunn bench agent CA', 2);
  const leaf = await issueLeaf(ca, [host], 2);
  const [certFile, keyFile, caFile] = [join(tmp, 'agent.pem'), join(tmp, 'agent.key'), join(tmp, 'agent-ca.pem')];
  writeFileSync(certFile, leaf.certPem);
  writeFileSync(keyFile, leaf.keyPem);
  writeFileSync(caFile, ca.certPem);
  const agent = await startAgent(relay, token, originPort, ['-n', name, '--public', '--quiet', '--no-inspect', '--terminate-at', 'agent', '--tls-cert', certFile, '--tls-key', keyFile]);
  await agent.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 20_000);
  await relay.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === host, 20_000);
  const relayTerminated = await measure(relay, new URL(relayAgent.url).hostname, relay.caPath, o.seconds, o.bulk, script);
  const agentTerminated = await measure(relay, host, caFile, o.seconds, o.bulk, script);
  return { result: { relayTerminated, agentTerminated }, stop: () => agent.stop() };
}

/** The table rows: metric, relay-terminated, agent-terminated, agent/relay. */
export function agentTlsRows(r: AgentTlsBench, bulkMiB: number, fmt: (n: number, d?: number) => string, ratio: (a: number, b: number) => string): string[][] {
  const a = r.agentTerminated;
  const t = r.relayTerminated;
  return [
    ['HTTPS through the relay (issue 12)', 'TLS ends at relay', 'TLS ends at agent', 'agent/relay'],
    ['req/s c50', fmt(t.c50rps), fmt(a.c50rps), ratio(a.c50rps, t.c50rps)],
    ['relay CPU µs per request (c50)', fmt(t.relayCpuUsPerReq, 1), fmt(a.relayCpuUsPerReq, 1), ratio(a.relayCpuUsPerReq, t.relayCpuUsPerReq)],
    [`download ${bulkMiB} MiB, MiB/s`, fmt(t.downloadMiBs), fmt(a.downloadMiBs), ratio(a.downloadMiBs, t.downloadMiBs)],
    ['errors c50', String(t.errors), String(a.errors), ''],
  ];
}
