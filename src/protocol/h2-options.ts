import type { ClientSessionOptions, ServerOptions } from 'node:http2';

// HTTP/2 tuning for the agent link, from research/data-plane-measurements.md:
// - both the stream window (SETTINGS_INITIAL_WINDOW_SIZE) and the connection window
//   (setLocalWindowSize, called on both ends after connect) must be large for bulk throughput;
// - the default maxSessionMemory (10 MB) wedges a session after a few hundred aborted downloads;
// - public clients that hang up turn into RST_STREAMs the relay sends to the agent (the HTTP/2
//   server here), which trip nghttp2's rapid-reset limiter unless its burst/rate are raised.

export const STREAM_WINDOW = 8 * 1024 * 1024;
export const SESSION_WINDOW = 64 * 1024 * 1024;
/**
 * The agent's own connection window (what the relay may have in flight towards it), smaller than the relay's. Node's
 * HTTP/2 session stops reading its socket while one of its writes is in progress (`Http2Session::MaybeStopReading`,
 * nodejs/node#29399): with 64 MiB on both ends, bulk data both ways at once could leave both ends mid-write and neither
 * reading, for good (test/e2e/bulk-both-ways.test.ts). With 1 MiB towards the agent, what the relay writes fits in the
 * sockets' buffers, its writes finish, it keeps reading, and the agent's writes drain. A JavaScript always-reading
 * socket on the agent's end fixed it too, but Node then runs the session on its slower JSStreamSocket path and the
 * data-plane robustness test (5,000 + 10,000 aborted downloads) failed under load with it.
 */
export const AGENT_SESSION_WINDOW = 1024 * 1024;

const common = {
  maxSessionMemory: 512,
  maxHeaderListPairs: 256,
  peerMaxConcurrentStreams: 1_000_000,
  settings: {
    initialWindowSize: STREAM_WINDOW,
    maxConcurrentStreams: 1_000_000,
    maxFrameSize: 64 * 1024,
    enablePush: false,
  },
} as const;

/** The relay's side (HTTP/2 client on the accepted socket). */
export const relaySessionOptions: ClientSessionOptions = { ...common, settings: { ...common.settings } };

/** The agent's side (HTTP/2 server on its outbound socket). */
export const agentServerOptions: ServerOptions = {
  ...common,
  settings: { ...common.settings },
  // Aborts by public clients arrive as RST_STREAM from the relay; they are not an attack here.
  streamResetBurst: 1_000_000,
  streamResetRate: 1_000_000,
  maxSessionInvalidFrames: 1_000_000,
  maxSessionRejectedStreams: 1_000_000,
};
