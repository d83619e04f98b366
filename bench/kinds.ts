import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freeTcpUdpPort } from '../test/support/free-udp-port.ts';
import { createToken, request, startCli, startRelay, type Proc } from '../test/e2e/harness.ts';
import { sshForward, startSshd, type Cleanups } from './ssh.ts';

// `npm run bench` TCP and UDP sections (issue 11), each in one run: bulk bytes through a public
// TCP port vs `ssh -R` vs direct, and through `tunn connect` vs `ssh -L` (tunn connect crosses
// two encrypted hops — client→relay and relay→agent — where ssh -L crosses one); a 64-byte
// request/response echo at 1 and 50 connections; UDP datagrams/s and loss at a fixed offered
// rate through a public UDP port vs direct. `--only=tcp,udp` runs only these sections.

export type Section = 'http' | 'tcp' | 'udp';

/** `--only=tcp,udp`: the sections to run (undefined: all). */
export function onlySections(argv: string[]): Set<Section> | undefined {
  const v = argv.find((a) => a.startsWith('--only='))?.split('=')[1];
  if (!v) return undefined;
  const parts = v.split(',').map((x) => x.trim());
  const bad = parts.filter((p) => !['http', 'tcp', 'udp'].includes(p));
  if (bad.length) throw new Error(`--only=${v}: unknown section ${bad.join(', ')} (use http, tcp, udp)`);
  return new Set(parts as Section[]);
}

export interface KindsBenchOptions {
  quick: boolean;
  seconds: number;
  bulkBytes: number;
  sections: Set<Section>;
  cleanups: Cleanups;
  tmp: string;
  log(msg: string): void;
}

const ECHO_SIZE = 64;
const UDP_SIZE = 512;
const UDP_RATE = 30_000;

/** One TCP target for both measures: first byte 'B' = sink (answers the byte count at the end), 'E' = echo. */
async function tcpTarget(): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => {});
    s.once('data', (first: Buffer) => {
      if (first[0] === 0x45) {
        if (first.length > 1) s.write(first.subarray(1));
        s.pipe(s);
        return;
      }
      let n = first.length - 1;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => s.end(String(n)));
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return srv;
}

const UDP_LOAD = fileURLToPath(new URL('./udp-load.ts', import.meta.url));

/** The JSON lines a child prints on stdout, one at a time. */
function jsonLines(p: ChildProcess): () => Promise<Record<string, number>> {
  const queue: Record<string, number>[] = [];
  const waiting: ((v: Record<string, number>) => void)[] = [];
  let ended = false;
  const rl = createInterface({ input: p.stdout! });
  rl.on('line', (l) => {
    if (!l.startsWith('{')) return;
    const v = JSON.parse(l) as Record<string, number>;
    const w = waiting.shift();
    if (w) w(v);
    else queue.push(v);
  });
  rl.on('close', () => (ended = true));
  return () =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift()!);
      if (ended) return reject(new Error('bench/udp-load.ts ended without a result'));
      waiting.push(resolve);
      p.once('exit', (code) => setImmediate(() => reject(new Error(`bench/udp-load.ts exited (${code}) without a result`))));
    });
}

/** The UDP echo target in its own process (bench/udp-load.ts echo); counts what reached it. */
async function udpEcho(cleanups: Cleanups): Promise<{ port: number; received(): Promise<number> }> {
  const p = spawn(process.execPath, [UDP_LOAD, 'echo'], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => void p.kill());
  const next = jsonLines(p);
  const { port } = await next();
  return {
    port: port!,
    received: async () => {
      p.stdin!.write('stats\n');
      return (await next()).received!;
    },
  };
}

/** Sends `bytes` to a sink and waits for its count: MiB/s. */
async function bulk(port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const start = process.hrtime.bigint();
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(c, 'connect');
  c.write('B');
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!c.write(chunk)) await once(c, 'drain');
  }
  c.end();
  let answer = '';
  c.on('data', (d: Buffer) => (answer += d.toString()));
  await once(c, 'end');
  c.destroy();
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (Number(answer) < bytes) throw new Error(`bulk through port ${port}: the sink got ${answer} of ${bytes} bytes`);
  return bytes / 1024 ** 2 / secs;
}

/** `conns` connections each doing 64-byte request/response for `seconds`: round trips per second. */
async function echo(port: number, conns: number, seconds: number): Promise<number> {
  const msg = Buffer.alloc(ECHO_SIZE, 0x62);
  let total = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      const c = net.connect({ host: '127.0.0.1', port, noDelay: true });
      await once(c, 'connect');
      c.write('E');
      await new Promise<void>((resolve, reject) => {
        let got = 0;
        c.on('error', reject);
        c.on('data', (d: Buffer) => {
          got += d.length;
          while (got >= ECHO_SIZE) {
            got -= ECHO_SIZE;
            total++;
            if (Date.now() >= end) return resolve();
            c.write(msg);
          }
        });
        c.write(msg);
      });
      c.destroy();
    }),
  );
  return total / seconds;
}

/** The kernel's UDP counters (Linux /proc/net/snmp): datagrams dropped because a socket's receive buffer was full. */
function kernelUdpBufErrors(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const [head, vals] = [lines[0]!.split(/\s+/), lines[1]!.split(/\s+/)];
    return Number(vals[head.indexOf('RcvbufErrors')]) + Number(vals[head.indexOf('SndbufErrors')]);
  } catch {
    return undefined;
  }
}

/** Receive-buffer drops of the UDP socket bound to `port` (Linux /proc/net/udp "drops", cumulative). */
function socketDrops(port: number): number | undefined {
  try {
    const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    const line = readFileSync('/proc/net/udp', 'utf8').split('\n').find((l) => l.trim().split(/\s+/)[1]?.endsWith(hex));
    return line === undefined ? undefined : Number(line.trim().split(/\s+/).at(-1));
  } catch {
    return undefined;
  }
}

interface UdpResult {
  dps: number;
  loss: number;
  /** Lost on the way to the target, and on the way back (of what the target echoed). */
  lossOut: number;
  lossBack: number;
  /** Datagrams the kernel dropped for full socket buffers during the run (machine-wide; Linux only). */
  kernelBufDrops?: number;
}

/**
 * Offers UDP_RATE datagrams/s of UDP_SIZE bytes for `seconds` from a sender in its own process
 * (bench/udp-load.ts send); returns what came back per second and the loss, per direction from
 * the echo target's count.
 */
async function udpRun(port: number, seconds: number, target: { received(): Promise<number> }): Promise<UdpResult> {
  const p = spawn(process.execPath, [UDP_LOAD, 'send', String(port), String(UDP_RATE), String(seconds), String(UDP_SIZE)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const next = jsonLines(p);
  await next(); // ready: the flow answered its probe (probe datagrams are not counted)
  const before = await target.received();
  const bufBefore = kernelUdpBufErrors();
  const { sent, back } = (await next()) as { sent: number; back: number };
  const reached = (await target.received()) - before;
  return {
    dps: back / seconds,
    loss: sent ? (sent - back) / sent : 1,
    lossOut: sent ? (sent - reached) / sent : 1,
    lossBack: reached ? Math.max(0, reached - back) / reached : 1,
    kernelBufDrops: bufBefore === undefined ? undefined : kernelUdpBufErrors()! - bufBefore,
  };
}

async function kindAgent(args: string[], relayArgs: string[], cleanups: Cleanups): Promise<Record<string, unknown>> {
  const p: Proc = startCli([...args, ...relayArgs, '--json', '--quiet']);
  cleanups.push(() => p.kill());
  const ready = await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal', 30_000);
  if (ready.event !== 'ready') throw new Error(`tunn ${args.join(' ')}: ${JSON.stringify(ready)}`);
  return ready;
}

export async function benchKinds(o: KindsBenchOptions): Promise<{ rows: string[][]; targets: Record<string, boolean>; results: Record<string, unknown> }> {
  const [tcpPort, udpPort] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
  const relay = await startRelay({ extra: ['--tcp-ports', String(tcpPort), '--udp-ports', String(udpPort), '--udp-flows', '10000'] });
  o.cleanups.push(() => relay.stop());
  const tokenFile = join(o.tmp, 'kinds.token');
  writeFileSync(tokenFile, (await createToken(relay, 'bench@example.com')) + '\n', { mode: 0o600 });
  const relayArgs = ['--relay', relay.url, '--relay-ca', relay.caPath, '--token-file', tokenFile];
  const rows: string[][] = [];
  const targets: Record<string, boolean> = {};
  const results: Record<string, unknown> = {};
  const mib = o.bulkBytes / 1024 ** 2;

  if (o.sections.has('tcp')) {
    o.log('tcp: target, public port, tunn connect, ssh -R, ssh -L');
    const target = await tcpTarget();
    o.cleanups.push(() => void target.close());
    const tport = (target.address() as AddressInfo).port;
    await kindAgent(['tcp', String(tport), '-n', 'bench-tcp', '--public'], relayArgs, o.cleanups);
    const priv = await kindAgent(['tcp', String(tport), '-n', 'bench-private'], relayArgs, o.cleanups);
    const conn = startCli(['connect', String(priv.host), '--listen', '0', '--json', ...relayArgs]);
    o.cleanups.push(() => conn.kill());
    const connPort = Number(String((await conn.waitFor((l) => l.event === 'ready', 30_000)).listen).split(':')[1]);
    const sshd = await startSshd(o.cleanups);
    const sshR = await sshForward(sshd, '-R', tport, o.cleanups);
    const sshL = await sshForward(sshd, '-L', tport, o.cleanups);
    const paths = { direct: tport, 'public port': tcpPort, 'ssh -R': sshR.port, 'tunn connect': connPort, 'ssh -L': sshL.port } as const;
    const r: Record<string, { bulkMiBs: number; c1: number; c50: number }> = {};
    for (const [name, port] of Object.entries(paths)) {
      o.log(`tcp ${name}`);
      await echo(port, 10, 1); // warm-up
      r[name] = { bulkMiBs: await bulk(port, o.bulkBytes), c1: await echo(port, 1, o.seconds), c50: await echo(port, 50, o.seconds) };
    }
    results.tcp = r;
    const f = (v: number): string => v.toLocaleString('en-US', { maximumFractionDigits: 0 });
    rows.push(['tcp', ...Object.keys(paths)]);
    rows.push([`bulk ${mib} MiB, MiB/s`, ...Object.values(r).map((x) => f(x.bulkMiBs))]);
    rows.push(['echo c1, round trips/s', ...Object.values(r).map((x) => f(x.c1))]);
    rows.push(['echo c50, round trips/s', ...Object.values(r).map((x) => f(x.c50))]);
    targets['tcp: public port bulk ≥ 1.0× ssh -R'] = r['public port']!.bulkMiBs >= r['ssh -R']!.bulkMiBs;
    targets['tcp: public port echo c50 ≥ 1.0× ssh -R'] = r['public port']!.c50 >= r['ssh -R']!.c50;
  }

  if (o.sections.has('udp')) {
    o.log(`udp: ${UDP_RATE} datagrams/s of ${UDP_SIZE} bytes offered`);
    const target = await udpEcho(o.cleanups);
    const uport = target.port;
    await kindAgent(['udp', String(uport), '-n', 'bench-udp', '--public'], relayArgs, o.cleanups);
    await udpRun(udpPort, 1, target); // warm-up: the relay and agent are warm (each run is a new flow)
    const direct = await udpRun(uport, o.seconds, target);
    const pub = await udpRun(udpPort, o.seconds, target);
    // Where the relay dropped datagrams (backpressure on the flow's stream, …): the why of the loss.
    const metrics = (await request(`http://${relay.domain}:${relay.httpPort}/metrics`)).text;
    const relayDrops = Object.fromEntries(
      [...metrics.matchAll(/^tunn_drops_total\{tunnel="bench-udp[^"]*",reason="([^"]+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]),
    );
    o.log(`udp: relay drops (all runs, warm-up included): ${JSON.stringify(relayDrops)}`);
    // Which socket overflowed (cumulative over all runs): the relay's public port or the echo target's.
    const socketBufDrops = { relayPublicPort: socketDrops(udpPort), echoTarget: socketDrops(uport) };
    o.log(`udp: full-receive-buffer drops per socket (all runs): ${JSON.stringify(socketBufDrops)}`);
    results.udp = { offeredPerSecond: UDP_RATE, size: UDP_SIZE, direct, publicPort: pub, relayDrops, socketBufDrops };
    const pct = (x: number): string => `${(x * 100).toFixed(3)} %`;
    rows.push(['udp', 'direct', 'public port']);
    rows.push([`datagrams/s back (offered ${UDP_RATE})`, direct.dps.toFixed(0), pub.dps.toFixed(0)]);
    rows.push(['loss', pct(direct.loss), pct(pub.loss)]);
    rows.push(['  lost on the way to the target', pct(direct.lossOut), pct(pub.lossOut)]);
    rows.push(['  lost on the way back', pct(direct.lossBack), pct(pub.lossBack)]);
    rows.push(['kernel: dropped, socket buffer full', String(direct.kernelBufDrops ?? '-'), String(pub.kernelBufDrops ?? '-')]);
    targets['udp: ≥ 30,000 datagrams/s of 512 bytes through a public port'] = pub.dps >= 30_000;
    targets['udp: < 0.1 % loss through a public port'] = pub.loss < 0.001;
  }
  return { rows, targets, results };
}
