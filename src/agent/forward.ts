import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { Http1Framer } from '../lib/http1.ts';
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
}

export function forwardStream(stream: ServerHttp2Stream, opts: ForwardOptions): void {
  const t = opts.target;
  let connected = false;
  const sock: Socket =
    t.protocol === 'https'
      ? tls.connect({ host: t.host, port: t.port, servername: net.isIP(t.host) ? undefined : t.host, rejectUnauthorized: opts.verifyTargetTls, lookup: localhostAwareLookup, ALPNProtocols: ['http/1.1'] })
      : net.connect({ host: t.host, port: t.port, lookup: localhostAwareLookup });
  sock.setNoDelay(true);
  sock.once(t.protocol === 'https' ? 'secureConnect' : 'connect', () => {
    connected = true;
    if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 200 });
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (!connected) {
      if (!stream.destroyed && !stream.headersSent) {
        stream.respond({ ':status': 502, [TARGET_ERROR_HEADER]: `${t.display} ${err.code ?? err.message}` }, { endStream: true });
      }
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
  sock.pipe(stream);
  if (opts.onRequest) observe(stream, sock, opts.onRequest);
}

/** Watches both directions to report one log entry per request. Never affects forwarding. */
function observe(stream: ServerHttp2Stream, sock: Socket, onRequest: (e: RequestLogEntry) => void): void {
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
    { kind: 'response', maxHeadSize: 1024 * 1024, nextRequestMethod: () => pending[0]?.method },
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
  stream.on('data', (chunk: Buffer) => {
    if (stopped) return;
    try {
      req.execute(chunk);
    } catch {
      stopped = true;
    }
  });
  sock.on('data', (chunk: Buffer) => {
    if (stopped) return;
    try {
      res.execute(chunk);
    } catch {
      stopped = true;
    }
  });
  sock.on('end', () => {
    if (!stopped && res.finish()) emit();
  });
}
