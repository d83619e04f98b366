import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { BufferPool } from '../lib/buffer-pool.ts';
import { Http1Framer, watchFeed } from '../lib/http1.ts';
import { TARGET_ERROR_HEADER } from '../protocol/messages.ts';
import { localhostAwareLookup, type Target } from './target.ts';

// The agent's half of the data plane: one relay stream ↔ one TCP connection to the target,
// piped both ways with back-pressure. The relay has already rewritten request heads.

export interface RequestLogEntry {
  time: Date;
  method: string;
  path: string;
  status: number;
  durationMs: number;
  /** Response bytes on the wire (head and body). */
  bytes: number;
}

export interface ForwardOptions {
  target: Target;
  /** Verify the target's certificate for https:// targets (off: --insecure-target). */
  verifyTargetTls: boolean;
  onRequest?: (e: RequestLogEntry) => void;
  /** The target could not be reached (the relay is told only the error code, not the address). */
  onTargetError?: (err: NodeJS.ErrnoException) => void;
  /** Sees both directions instead of `onRequest` (the inspector's capture). */
  watch?: StreamWatch;
}

/** Watches both directions of one connection. Must never throw, block or keep the chunks it is given. */
export interface StreamWatch {
  request(chunk: Buffer): void;
  response(chunk: Buffer): void;
  /** The target ended its side, or the stream closed (either may come first; called again is a no-op). */
  end(): void;
}

// Reads from plain TCP targets: every connection reads into one shared buffer (reads run one at
// a time on this thread, and each is copied out before the next), so an idle connection holds no
// read buffer at all. Large reads are copied into pooled buffers that come back once HTTP/2 has
// sent them (see BufferPool); small ones into ordinary (slab-allocated) buffers.
const READ_SIZE = 64 * 1024;
const SMALL_READ = 4 * 1024;
// Allocated by the first forwarded connection, not at import (the pool allocates only on take()).
let sharedReadBuffer: Buffer | undefined;
const readPool = new BufferPool(READ_SIZE, 256);
// Bytes of one connection that may wait in its relay stream before reading from the target pauses.
const MAX_STREAM_BUFFER = 256 * 1024;

export function forwardStream(stream: ServerHttp2Stream, opts: ForwardOptions): void {
  const t = opts.target;
  let connected = false;
  const watch = opts.watch ?? (opts.onRequest ? observe(opts.onRequest) : undefined);
  let sock: Socket;
  if (t.protocol === 'https') {
    sock = tls.connect({ host: t.host, port: t.port, servername: net.isIP(t.host) ? undefined : t.host, rejectUnauthorized: opts.verifyTargetTls, lookup: localhostAwareLookup, ALPNProtocols: ['http/1.1'] });
    sock.pipe(stream);
    if (watch) sock.on('data', watch.response);
  } else {
    let paused = false;
    stream.on('drain', () => {
      if (paused) {
        paused = false;
        sock.resume();
      }
    });
    sock = net.connect({
      host: t.host,
      port: t.port,
      lookup: localhostAwareLookup,
      onread: {
        buffer: (sharedReadBuffer ??= Buffer.allocUnsafeSlow(READ_SIZE)),
        callback: (n: number, buf: Buffer): boolean => {
          if (stream.destroyed) return false;
          let chunk: Buffer;
          if (n >= SMALL_READ) {
            const pooled = readPool.take();
            buf.copy(pooled, 0, 0, n);
            chunk = pooled.subarray(0, n);
            stream.write(chunk, () => readPool.give(pooled));
          } else {
            chunk = Buffer.from(buf.subarray(0, n));
            stream.write(chunk);
          }
          watch?.response(chunk);
          if (stream.writableLength > MAX_STREAM_BUFFER) paused = true;
          return !paused;
        },
      },
    });
    sock.on('end', () => stream.end());
  }
  sock.setNoDelay(true);
  sock.once(t.protocol === 'https' ? 'secureConnect' : 'connect', () => {
    connected = true;
    if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 200 });
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (!connected) {
      if (!stream.destroyed && !stream.headersSent) {
        stream.respond({ ':status': 502, [TARGET_ERROR_HEADER]: err.code ?? 'ECONNREFUSED' }, { endStream: true });
      }
      opts.onTargetError?.(err);
      return;
    }
    if (!stream.closed && !stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
  });
  stream.on('error', () => sock.destroy());
  stream.on('close', () => {
    // A reset (public client gone) or a finished exchange: either way the target connection is done.
    if (stream.rstCode !== undefined && stream.rstCode !== h2c.NGHTTP2_NO_ERROR) sock.destroy();
    else if (!sock.destroyed) sock.end();
  });
  stream.pipe(sock);
  if (watch) {
    stream.on('data', watch.request);
    sock.on('end', watch.end);
    if (opts.watch) stream.on('close', watch.end);
  }
}

/** Watches both directions to report one log entry per request. Never affects forwarding. */
function observe(onRequest: (e: RequestLogEntry) => void): StreamWatch {
  const pending: { method: string; path: string; start: number; time: Date }[] = [];
  let current: { method: string; path: string; start: number; time: Date; status: number; bytes: number } | undefined;
  let stopped = false;
  const req = new Http1Framer(
    { kind: 'request', maxHeadSize: 1024 * 1024 },
    {
      onHead: (h) => pending.push({ method: h.method, path: h.target, start: performance.now(), time: new Date() }),
      onBody: () => {},
      onMessageEnd: () => {},
    },
  );
  const res = new Http1Framer(
    { kind: 'response', maxHeadSize: 1024 * 1024, nextRequestMethod: () => pending[0]?.method, keepFields: false },
    {
      onHead: (h) => {
        if (h.status >= 100 && h.status < 200 && h.status !== 101) return;
        const p = pending.shift();
        if (!p) return;
        current = { ...p, status: h.status, bytes: h.size };
        if (h.status === 101) {
          emit();
          stopped = true;
        }
      },
      onBody: (_c, s, e) => {
        if (current) current.bytes += e - s;
      },
      onMessageEnd: () => emit(),
    },
  );
  const emit = (): void => {
    if (!current) return;
    const c = current;
    current = undefined;
    onRequest({ time: c.time, method: c.method, path: c.path, status: c.status, durationMs: performance.now() - c.start, bytes: c.bytes });
  };
  // Something that is not HTTP/1.1 ends the log for this connection, never the forwarding.
  const feed = (framer: Http1Framer) =>
    watchFeed(
      framer,
      () => stopped,
      () => (stopped = true),
    );
  return {
    request: feed(req),
    response: feed(res),
    end: () => {
      if (!stopped && res.finish()) emit();
    },
  };
}
