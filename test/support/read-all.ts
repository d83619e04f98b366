/** Everything `s` sends until it ends, as UTF-8 text; rejects on the stream's error. */
export function readAll(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.once('end', () => resolve(out));
    s.once('error', reject);
  });
}

/**
 * What `s` sends until it ends or closes, as UTF-8 text; never rejects (a connection
 * reset is seen by the caller as text cut short).
 */
export function readUntilClosed(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve(text));
    s.on('close', () => resolve(text));
  });
}
