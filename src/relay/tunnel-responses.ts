import { Http1Framer, type MessageHead } from '../lib/http1.ts';
import type { Logger } from '../lib/logger.ts';
import type { Exchanges } from './exchanges.ts';
import type { Tunnel } from './tunnel-directory.ts';

// The agent's side of a public HTTP/1 connection as the proxy watches it (http-proxy.ts): the
// bytes the agent sends are already written to the client as they are (tunnel-stream.ts); here
// they are read as responses, to know where each ends (the exchanges, and the relay's answers
// waiting behind them), when a 101 switches the connection to the upgrade's protocol, and to
// count each final response on the tunnel.

export interface ResponseEvents {
  /** Is an upgrade request waiting for its answer (a 101 then switches the connection)? */
  upgrading(): boolean;
  /** A 101 answered the upgrade: from here on the bytes are the new protocol's. */
  upgraded(): void;
  /** A final response ended; `wasFull`: MAX_PIPELINED requests waited for it. */
  ended(wasFull: boolean): void;
}

export class TunnelResponses {
  readonly #framer: Http1Framer;
  readonly #ex: Exchanges;
  readonly #ev: ResponseEvents;
  readonly #logger: Logger;
  readonly #tunnel: () => Tunnel | undefined;
  #started = false;
  #upgraded = false;

  constructor(ex: Exchanges, logger: Logger, tunnel: () => Tunnel | undefined, ev: ResponseEvents) {
    this.#ex = ex;
    this.#ev = ev;
    this.#logger = logger;
    this.#tunnel = tunnel;
    this.#framer = new Http1Framer(
      { kind: 'response', maxHeadSize: 256 * 1024, nextRequestMethod: () => ex.nextMethod(), keepFields: false },
      { onHead: (head) => this.#onHead(head), onBody: () => {}, onMessageEnd: () => this.#onEnd() },
    );
  }

  /** Some bytes of a response were written to the client (the relay can no longer answer in its place). */
  get started(): boolean {
    return this.#started;
  }

  /** Bytes from the agent, already written to the client. */
  data(chunk: Buffer): void {
    this.#started = true;
    if (!this.#upgraded) {
      try {
        this.#framer.execute(chunk);
      } catch (err) {
        // The target answered with something that is not HTTP/1.1: pass it through as is.
        this.#logger.warn({ host: this.#tunnel()?.host, err: (err as Error).message }, 'malformed response from target');
        this.#framer.switchToRaw();
      }
    }
    this.#ex.flush();
  }

  /** The agent's side ended (a response framed by the end of the connection ends here). */
  finish(): void {
    if (!this.#upgraded) this.#framer.finish();
  }

  #onHead(head: MessageHead): void {
    this.#ex.responseHead(head.status);
    if (head.status >= 200 || head.status === 101) this.#tunnel()?.metrics.requests(head.status);
    if (head.status === 101 && this.#ev.upgrading()) {
      this.#framer.switchToRaw();
      this.#upgraded = true;
      this.#ex.upgraded();
      this.#ev.upgraded();
    }
  }

  #onEnd(): void {
    // 1xx interim responses (100 Continue, 103 Early Hints) are not the end of the exchange: a
    // local answer to a later request waits for the final response, and an upgrade stays pending.
    const wasFull = this.#ex.full;
    if (this.#ex.responseEnded()) this.#ev.ended(wasFull);
  }
}
