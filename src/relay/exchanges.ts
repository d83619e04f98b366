import type { Principal } from '../auth/revocation.ts';

/**
 * Requests forwarded on one connection whose response has not ended. At this many the relay
 * stops parsing and reading the client until a response ends: a client pipelining requests to
 * a target that never answers must not grow the relay's (and the agent's) memory without end.
 */
export const MAX_PIPELINED = 32;

/**
 * The exchanges of one public connection, in order: requests forwarded whose response has not
 * ended, with their methods (a response to HEAD has no body) and credentials (revocation), and
 * the relay's own answer that waits for them to end (answers go out in request order).
 */
export class Exchanges {
  /** Forwarded requests whose response has not ended (at most MAX_PIPELINED). */
  inflight = 0;
  /** Methods of forwarded requests whose final response has not started, in order. */
  readonly #methods: string[] = [];
  /** The credential of each forwarded request whose response has not ended (undefined: a public tunnel). */
  #principals: (Principal | undefined)[] = [];
  /** The credential of the last forwarded request (kept while the connection idles, or is upgraded). */
  #last: Principal | undefined;
  /** Status of the response head being read (1xx interim responses do not end an exchange). */
  #status = 0;
  /** The relay's own answers waiting for the responses before them, in order. */
  #waiting: (() => void)[] = [];

  /** MAX_PIPELINED requests await their response: nothing more is parsed or read until one ends. */
  get full(): boolean {
    return this.inflight >= MAX_PIPELINED;
  }

  /** With `queued` request heads parsed and not yet handled, parsing must stop after the last one. */
  fillsWith(queued: number): boolean {
    return this.inflight + queued >= MAX_PIPELINED;
  }

  forwarded(method: string, principal: Principal | undefined): void {
    this.#last = principal;
    this.#principals.push(principal);
    this.#methods.push(method);
    this.inflight++;
  }

  /** The method of the request the next response answers (the response framer asks once per final response). */
  nextMethod(): string | undefined {
    return this.#methods.shift();
  }

  responseHead(status: number): void {
    this.#status = status;
  }

  /** After a 101 the connection is the upgrade's (its request was the last one forwarded). */
  upgraded(): void {
    this.inflight = 0;
    this.#principals = [];
  }

  /** A response ended; false when it was an interim one (100 Continue, 103): the exchange goes on. */
  responseEnded(): boolean {
    const s = this.#status;
    if (s >= 100 && s < 200 && s !== 101) return false;
    if (this.inflight > 0) this.inflight--;
    this.#principals.shift();
    return true;
  }

  /** Every credential the connection still acts for (see LiveConnection.principals). */
  principals(): Principal[] {
    const out: Principal[] = [];
    for (const p of this.#principals) if (p && !out.includes(p)) out.push(p);
    if (this.#last && !out.includes(this.#last)) out.push(this.#last);
    return out;
  }

  /**
   * Runs `write` now if nothing is in flight and no answer waits, else once the last forwarded
   * response ends, after the answers already waiting (then the promise settles).
   */
  afterInflight(write: () => void): void | Promise<void> {
    if (this.inflight === 0 && this.#waiting.length === 0) {
      write();
      return;
    }
    return new Promise<void>((resolve) => {
      this.#waiting.push(() => {
        write();
        resolve();
      });
    });
  }

  /** Called as response bytes are handled: runs the waiting answers once nothing is in flight. */
  flush(): void {
    if (this.inflight > 0) return;
    for (const w of this.#waiting.splice(0)) w();
  }
}
