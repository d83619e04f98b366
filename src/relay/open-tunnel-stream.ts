import type { SplicedStream } from '../lib/splice.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import { awaitStreamAnswer, type Refusal } from '../protocol/stream-refusal.ts';
import type { StreamOpen, Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// One way to open a byte stream (tcp, udp, tls kinds) to a tunnel's agent and wait for its
// answer, shared by `tunn connect` (connect-route.ts), the public TCP/UDP ports (kind-ports.ts)
// and TLS passthrough (the edge's tls-to-agent route): a session of the tunnel, a stream of the
// kind, and the agent's yes (the bytes are the connection's) or its typed refusal.

export async function openTunnelStream(directory: TunnelDirectory, t: Tunnel, o: StreamOpen): Promise<SplicedStream | Refusal> {
  const session = directory.pickSession(t);
  if (!session) return { reason: 'target_unreachable', message: `the agent of ${t.host} is not connected right now: try again in a moment` };
  let stream;
  try {
    stream = session.openStream(t, o);
  } catch (err) {
    return { reason: 'target_unreachable', message: `the agent of ${t.host} could not take a stream (${(err as Error).message}): try again in a moment` };
  }
  const answer = await awaitStreamAnswer(stream);
  if (!answer.open) return answer.refusal;
  return splicedH2Stream(stream);
}

export const isRefusal = (v: SplicedStream | Refusal): v is Refusal => 'reason' in v;
