import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// A port the test picks and then hands to another program is free only "right now": until that
// program binds it, anything else may take it. The kernel hands out ports from its ephemeral
// range to every outgoing connection and every listen(0) — so a port taken from there is the one
// most likely to be re-used in that gap, above all with test files running side by side. Ports
// are picked at random below that range instead, where only an explicit bind lands.

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32768;
  } catch {
    return 32768;
  }
}

const LOW = 10_000;
const HIGH = ephemeralLow(); // exclusive

function tryListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, host, () => {
      const bound = (srv.address() as { port: number }).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** A TCP port free on `host` (a loopback address) right now, for programs that cannot listen on port 0 and report it (Pebble, a relay's --node-url). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  if (HIGH - LOW >= 1000) {
    for (let i = 0; i < 50; i++) {
      const port = await tryListen(LOW + Math.floor(Math.random() * (HIGH - LOW)), host);
      if (port !== undefined) return port;
    }
  }
  const port = await tryListen(0, host);
  if (port === undefined) throw new Error(`no free TCP port on ${host}`);
  return port;
}
