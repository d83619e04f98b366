import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { TARGET_ERROR_HEADER } from '../protocol/messages.ts';
import type { StreamOpen, Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// One public connection's stream to the agent, whatever its kind: opened on one of the
// tunnel's live sessions, written with back-pressure on the client, read back into the
// client with writes batched per event loop turn. The HTTP proxy (http-proxy.ts) reads the
// bytes it passes on; other kinds would pass them on as they are.

// Response bytes held for a slow client before the agent stream is paused (HTTP/2 flow control
// then holds the rest at the agent).
const MAX_CLIENT_BUFFER = 256 * 1024;
// Pieces from this size on are gathered per event loop turn (see #onData).
const BATCH_FROM = 4 * 1024;

export interface TunnelStreamEvents {
  /** Bytes from the agent, already written to the client. */
  data(chunk: Buffer): void;
  /** The agent could not connect to the target (its error code, e.g. ECONNREFUSED; STREAM_KIND). */
  targetDown(code: string): void;
  /** The agent's side ended. */
  end(): void;
  /** The stream closed (after end, or reset: `reset` then). */
  close(reset: boolean): void;
  /** The stream takes bytes again after write() said it was full. */
  drained(): void;
}

export class TunnelStream {
  readonly tunnel: Tunnel;
  readonly #stream: ClientHttp2Stream;
  readonly #client: Duplex;
  readonly #ev: TunnelStreamEvents;
  #full = false;
  #batching = false;

  /** Opens a stream on a live session of `tunnel` (trying each once); undefined when none can take one. */
  static open(directory: TunnelDirectory, tunnel: Tunnel, o: StreamOpen, client: Duplex, logger: Logger, ev: TunnelStreamEvents): TunnelStream | undefined {
    for (let attempt = 0; attempt < tunnel.sessions.length + 1; attempt++) {
      const session = directory.pickSession(tunnel);
      if (!session) {
        logger.warn({ host: tunnel.host, sessions: tunnel.sessions.length }, 'no live agent session for the tunnel');
        return undefined;
      }
      try {
        return new TunnelStream(session.openStream(tunnel, o), tunnel, client, logger, ev);
      } catch (err) {
        logger.warn({ host: tunnel.host, session: session.id.slice(0, 8), err: errorMessage(err) }, 'cannot open a stream on an agent session');
      }
    }
    return undefined;
  }

  private constructor(stream: ClientHttp2Stream, tunnel: Tunnel, client: Duplex, logger: Logger, ev: TunnelStreamEvents) {
    this.#stream = stream;
    this.tunnel = tunnel;
    this.#client = client;
    this.#ev = ev;
    tunnel.metrics.open++;
    stream.on('response', (headers) => {
      if (Number(headers[':status']) === 200) return;
      // "<code>" (older agents: "<target> <code>"); the target's address is not shown.
      const why = String(headers[TARGET_ERROR_HEADER] ?? '').trim();
      ev.targetDown(why.slice(why.lastIndexOf(' ') + 1));
    });
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => ev.end());
    // A reset stream (the agent went, the target hung up) ends the client's connection in 'close' below.
    stream.on('error', (err) => logger.debug({ host: tunnel.host, err: err.message }, 'data stream to the agent failed'));
    stream.on('close', () => {
      tunnel.metrics.open--;
      ev.close(stream.rstCode !== undefined && stream.rstCode !== h2c.NGHTTP2_NO_ERROR);
    });
    client.on('drain', () => {
      if (stream.isPaused()) stream.resume();
    });
  }

  get closed(): boolean {
    return this.#stream.closed;
  }

  get destroyed(): boolean {
    return this.#stream.destroyed;
  }

  /** The agent does not take more right now (the client is paused until `drained`). */
  get full(): boolean {
    return this.#full;
  }

  /** Client bytes to the agent; when the stream is full the client socket is paused. */
  write(data: Buffer): void {
    const s = this.#stream;
    if (s.destroyed) return;
    this.tunnel.metrics.bytesIn += data.length;
    if (!s.write(data) && !this.#full) {
      this.#full = true;
      this.#client.pause();
      s.once('drain', () => {
        this.#full = false;
        this.#ev.drained();
      });
    }
  }

  /** The client finished sending: half-close toward the agent. */
  end(): void {
    if (!this.#stream.destroyed) this.#stream.end();
  }

  /** Resets the stream only if it is unfinished (resetting finished streams trips nghttp2's rapid-reset limiter). */
  cancel(): void {
    const s = this.#stream;
    if (s.closed || s.destroyed) return;
    s.close(h2c.NGHTTP2_CANCEL);
  }

  #onData(chunk: Buffer): void {
    // The bytes go to the client first (responses pass through unchanged); the proxy's
    // tracking of where each response ends comes after, off the latency path.
    // HTTP/2 hands bulk DATA over in pieces of a TLS record or less; gathering the pieces of one
    // event loop turn into one write saves a syscall and a wake-up of the client per piece. A
    // small piece (a whole small response, as a rule) is written at once unless a batch is open.
    const client = this.#client;
    if (!this.#batching && chunk.length >= BATCH_FROM) {
      this.#batching = true;
      client.cork();
      setImmediate(this.#endBatch);
    }
    client.write(chunk);
    if (client.writableLength > MAX_CLIENT_BUFFER) this.#stream.pause();
    this.tunnel.metrics.bytesOut += chunk.length;
    this.#ev.data(chunk);
  }

  readonly #endBatch = (): void => {
    this.#batching = false;
    this.#client.uncork();
  };
}
