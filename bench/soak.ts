import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { createToken, startAgent, startRelay, until, type Proc } from '../test/e2e/harness.ts';

// `npm run soak` (issue 9; not a test, not run by CI): one relay (--dev), one agent with one
// public tunnel, and an origin in its own process. For --minutes (default 10):
//   - 1,000 keep-alive connections through the tunnel, each sending a request every
//     --interval-ms (default 1000) and checking the answer;
//   - 5,000 downloads aborted after their first bytes (half closed, half reset), in bursts of
//     500 spread over the run.
// Prints every --sample-s seconds the RSS of the relay and the agent, and at the end the
// errors (target: 0), the RSS trend (target: flat) and a verdict line; exits 1 unless it passes.
//
// The tunn command runs V8 with no incremental marking (src/lib/v8-tuning.ts): the old
// generation is collected only when its limit is reached, so RSS climbs for minutes before the
// first full GC whether or not anything leaks. To tell a leak from garbage not yet collected,
// the relay and agent run with the inspector on a loopback port (NODE_OPTIONS --inspect, soak
// only), and each sample first asks each process for a full GC, then reads its RSS and its live
// memory (heap used + external) through the inspector.

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    connections: { type: 'string', default: '1000' },
    'interval-ms': { type: 'string', default: '1000' },
    aborts: { type: 'string', default: '5000' },
    burst: { type: 'string', default: '500' },
    'sample-s': { type: 'string' },
  },
});
const MINUTES = Number(opt.minutes);
const CONNECTIONS = Number(opt.connections);
const INTERVAL_MS = Number(opt['interval-ms']);
const ABORTS = Number(opt.aborts);
const BURST = Number(opt.burst);
const RUN_MS = MINUTES * 60_000;
const SAMPLE_MS = Number(opt['sample-s'] ?? Math.max(5, Math.min(30, MINUTES * 6))) * 1000;
for (const [k, v] of Object.entries({ minutes: MINUTES, connections: CONNECTIONS, 'interval-ms': INTERVAL_MS, aborts: ABORTS, burst: BURST, 'sample-s': SAMPLE_MS / 1000 })) {
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${k} must be a positive number (got ${String(v)})`);
}
// RSS is "flat" when the last third of the run is within this of the first third after warm-up.
const FLAT_RATIO = 1.25;
const FLAT_SLACK_MIB = 16;

const ROOT = resolve(import.meta.dirname, '..');
const MiB = 1024 * 1024;
const out = (s: string): void => void process.stdout.write(`${s}\n`);

function rssMiB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

interface Inspector {
  /** Runs a full GC in the process, then returns its live memory (heap used + external) in MiB. */
  liveAfterGc(): Promise<number>;
  close(): void;
}

/** Connects to the inspector a process opened (NODE_OPTIONS --inspect=127.0.0.1:0). */
async function inspect(proc: Proc): Promise<Inspector> {
  const re = /Debugger listening on (ws:\/\/\S+)/;
  await until(() => proc.stderr.some((l) => re.test(l)), 15_000, 'the inspector URL');
  const ws = new WebSocket(re.exec(proc.stderr.find((l) => re.test(l))!)![1]!);
  await once(ws, 'open');
  type Reply = { id?: number; result?: { result?: { value?: string } } };
  const pending = new Map<number, (m: Reply) => void>();
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as Reply;
    if (m.id !== undefined) pending.get(m.id)?.(m);
    pending.delete(m.id ?? -1);
  });
  let next = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<Reply>((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    async liveAfterGc() {
      await call('HeapProfiler.collectGarbage');
      const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
      const m = JSON.parse(r.result?.result?.value ?? '{}') as { heapUsed?: number; external?: number };
      return ((m.heapUsed ?? NaN) + (m.external ?? NaN)) / MiB;
    },
    close: () => ws.close(),
  };
}

const errors = new Map<string, number>();
const fail = (what: string): void => void errors.set(what, (errors.get(what) ?? 0) + 1);

/** One keep-alive connection: a request every INTERVAL_MS until `until`. */
async function keepAliveLoop(port: number, host: string, i: number, until: number, stats: { requests: number; newSockets: number }): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 30_000 });
  // Spread the connections' first requests over one interval.
  await new Promise((r) => setTimeout(r, (i * INTERVAL_MS) / CONNECTIONS));
  for (let j = 0; Date.now() < until; j++) {
    const started = Date.now();
    await new Promise<void>((done) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/hello', headers: { host }, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode !== 200 || body !== 'hello') fail(`keep-alive: ${res.statusCode} ${body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 120)}`);
          stats.requests++;
          done();
        });
        res.on('error', (e) => {
          fail(`keep-alive response: ${e.message}`);
          done();
        });
      });
      req.on('socket', () => {
        if (!req.reusedSocket) stats.newSockets++;
      });
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (e) => {
        fail(`keep-alive request: ${e.message}`);
        done();
      });
    });
    const wait = INTERVAL_MS - (Date.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  agent.destroy();
}

/** GET 1 MiB and hang up on the first bytes (a TCP reset when `reset`). */
function abortedDownload(port: number, host: string, reset: boolean): Promise<void> {
  return new Promise((done) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let settled = false;
    const finish = (err?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) fail(`aborted download: ${err}`);
      done();
    };
    const timer = setTimeout(() => {
      s.destroy();
      finish('no response within 60 s');
    }, 60_000);
    s.on('connect', () => s.write(`GET /bytes/${MiB} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1', 0, Math.min(d.length, 64));
      if (got.length < 12 || settled) return;
      if (reset) s.resetAndDestroy();
      else s.destroy();
      finish(got.startsWith('HTTP/1.1 200') ? undefined : `status line ${JSON.stringify(got.split('\r\n')[0])}`);
    });
    s.on('error', (e) => finish(`client error: ${e.message}`));
    s.on('close', () => finish('closed before any response byte'));
  });
}

async function main(): Promise<void> {
  const origin = spawn(process.execPath, [join(ROOT, 'bench/origin.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const originPort = Number(await new Promise<string>((r) => createInterface({ input: origin.stdout! }).once('line', r)));
  // The tunn processes started from here on (relay, token command, agent) get an inspector.
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim();
  const relay = await startRelay();
  const token = await createToken(relay, 'soak@example.com');
  const agent = await startAgent(relay, token, originPort, ['--public', '--quiet']);
  const relayInspector = await inspect(relay.proc);
  const agentInspector = await inspect(agent.proc);
  const cleanup = async (): Promise<void> => {
    // A process with an inspector client attached waits for it to go before exiting.
    relayInspector.close();
    agentInspector.close();
    await agent.stop();
    await relay.stop();
    origin.kill();
    rmSync(relay.dataDir, { recursive: true, force: true });
  };
  try {
    const host = new URL(agent.httpUrl).host;
    const port = relay.httpPort;
    out(`soak: ${MINUTES} min, ${CONNECTIONS} keep-alive connections (a request each every ${INTERVAL_MS} ms), ${ABORTS} aborted 1 MiB downloads in bursts of ${BURST}`);
    out(`soak: relay pid ${relay.proc.child.pid}, agent pid ${agent.proc.child.pid}, tunnel ${agent.httpUrl}`);
    out('          after a full GC: RSS, live (heap used + external)');
    out('   time      relay RSS    live   agent RSS    live    requests   aborted   errors');

    const start = Date.now();
    const until = start + RUN_MS;
    const stats = { requests: 0, newSockets: 0 };
    let aborted = 0;
    type Sample = { t: number; relay: number; relayLive: number; agent: number; agentLive: number };
    const samples: Sample[] = [];
    const sample = async (): Promise<void> => {
      const [relayLive, agentLive] = await Promise.all([relayInspector.liveAfterGc(), agentInspector.liveAfterGc()]);
      const s: Sample = { t: Date.now() - start, relay: rssMiB(relay.proc.child.pid), relayLive, agent: rssMiB(agent.proc.child.pid), agentLive };
      samples.push(s);
      const errs = [...errors.values()].reduce((a, b) => a + b, 0);
      const mib = (n: number, w: number) => n.toFixed(1).padStart(w);
      out(`${(s.t / 1000).toFixed(0).padStart(6)} s ${mib(s.relay, 10)} MiB ${mib(s.relayLive, 7)} ${mib(s.agent, 7)} MiB ${mib(s.agentLive, 7)} ${String(stats.requests).padStart(11)} ${String(aborted).padStart(9)} ${String(errs).padStart(8)}`);
    };
    await sample();
    let sampling = Promise.resolve();
    const sampler = setInterval(() => (sampling = sampling.then(sample)), SAMPLE_MS);

    const loops = Array.from({ length: CONNECTIONS }, (_, i) => keepAliveLoop(port, host, i, until, stats));
    // Bursts evenly spread over the run, the last one well before the end.
    const bursts = Math.ceil(ABORTS / BURST);
    const burstRuns = (async () => {
      for (let b = 0; b < bursts; b++) {
        const due = start + ((b + 0.5) * RUN_MS * 0.9) / bursts;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        const n = Math.min(BURST, ABORTS - b * BURST);
        await Promise.all(Array.from({ length: n }, (_, i) => abortedDownload(port, host, i % 2 === 1).then(() => void aborted++)));
      }
    })();
    await Promise.all([...loops, burstRuns]);
    clearInterval(sampler);
    await sampling;
    await sample();

    // Still serving on fresh connections afterwards.
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((done) => {
        http
          .get({ host: '127.0.0.1', port, path: '/hello', headers: { host }, agent: false }, (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode !== 200) fail(`after the run: ${res.statusCode}`);
              done();
            });
          })
          .on('error', (e) => {
            fail(`after the run: ${e.message}`);
            done();
          });
      });
    }
    if (agent.proc.child.exitCode !== null) fail('the agent exited');
    if (relay.proc.child.exitCode !== null) fail('the relay exited');
    const reconnects = agent.proc.lines.filter((l) => (l.event === 'notice' && /lost|reconnect/.test(String(l.message))) || (l.event === 'state' && l.state === 'reconnecting')).length;
    if (reconnects > 0) fail(`agent sessions lost: ${reconnects}`);

    // RSS trend: median of the first third after warm-up (the first sample is before any load)
    // against the median of the last third.
    const loaded = samples.slice(1);
    const third = Math.max(1, Math.floor(loaded.length / 3));
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const trend = (k: 'relay' | 'relayLive' | 'agent' | 'agentLive') => {
      const early = median(loaded.slice(0, third).map((s) => s[k]));
      const late = median(loaded.slice(-third).map((s) => s[k]));
      return { early, late, flat: late <= early * FLAT_RATIO + FLAT_SLACK_MIB };
    };
    const r = trend('relay');
    const a = trend('agent');
    const rl = trend('relayLive');
    const al = trend('agentLive');
    const errCount = [...errors.values()].reduce((x, y) => x + y, 0);
    out('');
    out(`requests: ${stats.requests} on ${stats.newSockets} connections opened (${CONNECTIONS} planned: ${stats.newSockets - CONNECTIONS} reopened); aborted downloads: ${aborted}`);
    out(`errors: ${errCount}${errCount ? '' : ' (target 0)'}`);
    for (const [what, n] of [...errors].sort((x, y) => y[1] - x[1]).slice(0, 10)) out(`  ${n} × ${what}`);
    const show = (name: string, t: ReturnType<typeof trend>) => `${name} ${t.early.toFixed(1)} → ${t.late.toFixed(1)} MiB (${t.flat ? 'flat' : 'GROWING'})`;
    out(`after a full GC, first third → last third of the run (flat = last ≤ first × ${FLAT_RATIO} + ${FLAT_SLACK_MIB} MiB):`);
    out(`  ${show('relay RSS', r)}, ${show('live', rl)}`);
    out(`  ${show('agent RSS', a)}, ${show('live', al)}`);
    const pass = errCount === 0 && r.flat && a.flat && rl.flat && al.flat;
    const word = (t: ReturnType<typeof trend>) => (t.flat ? 'flat' : 'growing');
    out(`verdict: ${pass ? 'PASS' : 'FAIL'} — ${errCount} errors; relay RSS ${word(r)}, live ${word(rl)}; agent RSS ${word(a)}, live ${word(al)}; over ${MINUTES} min`);
    process.exitCode = pass ? 0 : 1;
  } finally {
    await cleanup();
  }
}

await main();
