// Timers of the agent link, shared by both ends so they agree on what "dead" means.
// Under load a PING ack can queue behind megabytes of DATA, so a link is declared dead only
// when nothing at all arrived while a ping was out (see liveness.ts).

/** How long the relay waits for the agent's hello before closing a new session. */
export const HELLO_TIMEOUT_MS = 10_000;
/** The agent pings the relay this often, and gives up on the link after PING_TIMEOUT_MS of silence. */
export const AGENT_PING_INTERVAL_MS = 10_000;
export const AGENT_PING_TIMEOUT_MS = 5_000;
/** The relay pings each agent session this often, and waits as long again for any byte. */
export const RELAY_PING_INTERVAL_MS = 15_000;
export const RELAY_PING_TIMEOUT_MS = RELAY_PING_INTERVAL_MS;
/** A TLS handshake (agent link or public) that has not finished after this long is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The edge waits this long for a ClientHello before it drops a new socket. */
export const CLIENT_HELLO_TIMEOUT_MS = 10_000;
