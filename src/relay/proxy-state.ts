import type { Duplex } from 'node:stream';

// The types of one public connection (http-proxy.ts): the socket it reads, and its state.

/**
 * A public connection as the proxy needs it: a TCP or TLS socket accepted here, or a stream
 * another relay of the cluster carried here (src/relay/cluster-wiring.ts).
 */
export type PublicSocket = Duplex & { setTimeout(ms: number, cb?: () => void): unknown; setNoDelay?(noDelay?: boolean): unknown };

/**
 * Where a public connection is, as one value (what is read from the client, and how):
 * - `http`: request heads are parsed, routed and forwarded or answered here;
 * - `deciding`: a request waits for its decision (the gate, a lookup, earlier responses to
 *   end); the client is not read and nothing after it is handled until it is decided;
 * - `upgrading`: an upgrade request was forwarded; the bytes after it wait for the answer
 *   (101 → `raw`; anything else → `http`);
 * - `raw`: after a 101, bytes pass both ways unparsed;
 * - `closing`: the relay answers with Connection: close (the answer may still wait for the
 *   responses before it); nothing more is decided, and what the client still sends is dropped;
 * - `handed-over`: the relay's own host (node:http) serves the connection.
 */
export type ProxyState = 'http' | 'deciding' | 'upgrading' | 'raw' | 'closing' | 'handed-over';
