import net from 'node:net';

/** Sends `text` to host:port, half-closes, and resolves with everything the peer sent before its own end. */
export function echoThrough(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port, allowHalfOpen: true });
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('end', () => {
      c.end();
      resolve(got);
    });
    c.on('error', reject);
    c.on('connect', () => c.end(text));
  });
}

/** Calls `fn` every 300 ms until it resolves; after `ms` the last error is thrown. */
export async function retry<T>(fn: () => Promise<T>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}
