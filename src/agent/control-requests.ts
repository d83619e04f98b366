import { TunnError, type TunnErrorCode } from '../lib/errors.ts';
import type { AgentTlsRequest, ControlMessage, MessageOf, WireErrorCode } from '../protocol/messages.ts';

// Questions the agent asks the relay on a control stream and their answers (`tls-request` /
// `tls-reply`, matched by `rid`: the control stream is one ordered channel shared by every
// message). A question dies with the session it was asked on, or after `timeoutMs`.

interface Pending {
  resolve(v: unknown): void;
  reject(err: Error): void;
  slot: number;
  timer: NodeJS.Timeout;
}

export class ControlRequests {
  #next = 1;
  readonly #pending = new Map<number, Pending>();

  /** Sends `request` with `send` (session `slot`'s control stream); resolves with the relay's result, rejects with its error. */
  ask(send: (m: ControlMessage) => void, slot: number, request: AgentTlsRequest, timeoutMs = 60_000): Promise<unknown> {
    const rid = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(rid, new TunnError('UNAVAILABLE', `the relay did not answer a ${request.op} request within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
      timer.unref();
      this.#pending.set(rid, { resolve, reject, slot, timer });
      send({ type: 'tls-request', rid, request });
    });
  }

  /** A `tls-reply` from the relay. */
  answer(m: MessageOf<'tls-reply'>): void {
    this.#settle(m.rid, m.error ? new TunnError(LINK_ONLY.has(m.error.code) ? 'UNAVAILABLE' : (m.error.code as TunnErrorCode), m.error.message) : undefined, m.result);
  }

  /** Session `slot` went away: its questions get no answer. */
  sessionDown(slot: number): void {
    for (const [id, p] of this.#pending) if (p.slot === slot) this.#settle(id, new TunnError('UNAVAILABLE', 'the session to the relay closed before it answered'));
  }

  #settle(id: number, err: Error | undefined, result?: unknown): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(result);
  }
}

/** Wire codes that are not TunnError codes (messages.ts): read as UNAVAILABLE. */
const LINK_ONLY = new Set<WireErrorCode>(['INTERNAL', 'REPLACED', 'STOPPED', 'STREAM_KIND']);
