/** The writable side the bulk tests pump into: a socket, an HTTP/2 stream, any Duplex. */
interface BulkSink {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
  end(): unknown;
}

/** Writes `size` bytes of `fill` in 64 KiB chunks with back-pressure, then ends its side. */
export function sendBulk(s: BulkSink, size: number, fill: number): void {
  const chunk = Buffer.alloc(64 * 1024, fill);
  let sent = 0;
  const go = (): void => {
    while (sent < size) {
      sent += chunk.length;
      if (!s.write(chunk)) return void s.once('drain', go);
    }
    s.end();
  };
  go();
}

/**
 * Counts the bytes `s` delivers until it ends; rejects on its error, or when it has not ended
 * after `stallMs` (a generous ceiling: the point is that it does not stall for good).
 */
export function countUntilEnd(s: NodeJS.ReadableStream, expected: number, stallMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    s.on('end', () => resolve(n));
    s.on('error', reject);
    setTimeout(() => reject(new Error(`stalled: ${n} of ${expected} bytes after ${stallMs / 1000} s`)), stallMs).unref();
  });
}
