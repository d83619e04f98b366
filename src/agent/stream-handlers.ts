import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { DATA_HEADERS, isStreamKind, MAX_STREAM_IDLE_MS, TARGET_ERROR_HEADER, type StreamKind, type WireErrorCode } from '../protocol/messages.ts';

// The agent's side of the stream seam: every data stream the relay opens says its kind
// (DATA_HEADERS.kind), and the agent serves it through a table of one handler per kind it
// knows. A kind missing from the table is refused with a typed code, never guessed at.

/** What the relay said about a data stream in its headers. */
export interface DataStreamRequest {
  tunnelId: string;
  /** undefined: a kind this agent does not know (a newer relay). */
  kind: StreamKind | undefined;
  /** The public client's address, as the relay saw it. */
  clientIp: string;
  /** The public client's port, when the relay sent it (tcp/udp/tls). */
  clientPort: number | undefined;
  /** `tunn connect` streams: the email the relay verified. */
  email: string | undefined;
  /** `tunn connect` streams to a --proxy-protocol tunnel: the relay-signed assertion. */
  assertion: string | undefined;
  /** tcp/udp (and tls --backend tcp) streams: the relay's idle limit (ms); undefined when it sent none or one out of range (the agent's default applies). */
  idleMs: number | undefined;
}

/** Serves one data stream of tunnel `T`; owns the stream from then on. */
export type StreamHandler<T> = (stream: ServerHttp2Stream, tunnel: T, req: DataStreamRequest) => void;

/** One handler per stream kind the agent serves. */
export type StreamHandlers<T> = { readonly [K in StreamKind]?: StreamHandler<T> };

export function readDataStream(headers: IncomingHttpHeaders): DataStreamRequest {
  const raw = headers[DATA_HEADERS.kind];
  // Relays before kinds sent no kind (or "http"): their streams are HTTP.
  const kind = raw === undefined ? 'http' : isStreamKind(raw) ? raw : undefined;
  const port = Number(headers[DATA_HEADERS.clientPort]);
  const email = headers[DATA_HEADERS.email];
  const assertion = headers[DATA_HEADERS.assertion];
  const idle = headers[DATA_HEADERS.idleMs];
  const idleMs = typeof idle === 'string' && /^[1-9][0-9]{0,9}$/.test(idle) ? Number(idle) : undefined;
  return {
    tunnelId: String(headers[DATA_HEADERS.tunnel] ?? ''),
    kind,
    clientIp: String(headers[DATA_HEADERS.client] ?? ''),
    clientPort: Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined,
    email: typeof email === 'string' && email ? email : undefined,
    assertion: typeof assertion === 'string' && assertion ? assertion : undefined,
    idleMs: idleMs !== undefined && idleMs <= MAX_STREAM_IDLE_MS ? idleMs : undefined,
  };
}

/** Answers a data stream the agent will not serve; the relay shows `code` (TARGET_ERROR_HEADER) to whoever waits. */
export function refuseStream(stream: ServerHttp2Stream, status: number, code: WireErrorCode): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': status, [TARGET_ERROR_HEADER]: code }, { endStream: true });
}
