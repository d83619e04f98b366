import dgram from 'node:dgram';
import { once } from 'node:events';

// The UDP load of `npm run bench` (bench/kinds.ts spawns it): its own process, so neither the
// sender nor the echo target shares an event loop with the other or with the bench.
//
//   node bench/udp-load.ts echo                         → prints {"port":N}; on "stats\n" on stdin prints {"received":N}
//   node bench/udp-load.ts send PORT RATE SECONDS SIZE  → prints {"ready":1} once its flow answered, then {"sent":N,"back":N}
//
// The sender opens its flow with one answered datagram, then offers RATE datagrams/s in small bursts about every millisecond, then waits a second
// for stragglers. The echo counts what reached it, so the bench can split loss per direction.

const BUF = 4 * 1024 * 1024;

async function echo(): Promise<void> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: BUF, sendBufferSize: BUF });
  let received = 0;
  s.on('message', (m, r) => {
    received++;
    s.send(m, r.port, r.address);
  });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  s.setRecvBufferSize(BUF);
  s.setSendBufferSize(BUF);
  process.stdout.write(JSON.stringify({ port: s.address().port }) + '\n');
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    for (const line of d.split('\n')) if (line === 'stats') process.stdout.write(JSON.stringify({ received }) + '\n');
  });
  process.stdin.on('end', () => s.close());
}

async function send(port: number, rate: number, seconds: number, size: number): Promise<void> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: BUF, sendBufferSize: BUF });
  let back = 0;
  s.on('message', () => back++);
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  s.setRecvBufferSize(BUF);
  s.setSendBufferSize(BUF);
  s.connect(port, '127.0.0.1');
  await once(s, 'connect');
  const payload = Buffer.alloc(size, 0x63);
  // One datagram first, answered before the clock starts: a tunnel's flow is open (its stream
  // would otherwise hold only a few datagrams while it opens). Not counted by either side.
  const probe = setInterval(() => s.send(payload), 200);
  s.send(payload);
  await once(s, 'message');
  clearInterval(probe);
  await new Promise((r) => setTimeout(r, 200));
  back = 0;
  process.stdout.write(JSON.stringify({ ready: 1 }) + '\n');
  const total = Math.round(seconds * rate);
  let sent = 0;
  const start = performance.now();
  while (sent < total) {
    const due = Math.min(Math.floor(((performance.now() - start) / 1000) * rate), total);
    for (; sent < due; sent++) s.send(payload);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 1000));
  s.close();
  process.stdout.write(JSON.stringify({ sent, back }) + '\n');
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'echo') await echo();
else if (mode === 'send') await send(Number(args[0]), Number(args[1]), Number(args[2]), Number(args[3]));
else {
  process.stderr.write('usage: udp-load.ts echo | send PORT RATE SECONDS SIZE\n');
  process.exitCode = 2;
}
