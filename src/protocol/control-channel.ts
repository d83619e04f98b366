import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { encodeMessage, parseMessage, type ControlMessage } from './messages.ts';

const MAX_LINE = 256 * 1024;

/**
 * JSON lines over a duplex stream (the control stream of an agent session).
 * Emits 'message' (ControlMessage), 'invalid' (Error) and 'close'.
 */
export class ControlChannel extends EventEmitter<{ message: [ControlMessage]; invalid: [Error]; close: [] }> {
  readonly #stream: Duplex;
  #buf = '';
  #closed = false;

  constructor(stream: Duplex) {
    super();
    this.#stream = stream;
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => this.#onData(d));
    stream.on('close', () => this.#onClose());
    stream.on('end', () => this.#onClose());
    stream.on('error', () => this.#onClose());
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(m: ControlMessage): void {
    if (this.#closed || this.#stream.destroyed || this.#stream.writableEnded) return;
    this.#stream.write(encodeMessage(m));
  }

  close(): void {
    if (!this.#stream.destroyed) this.#stream.end();
    this.#onClose();
  }

  #onData(d: string): void {
    this.#buf += d;
    let nl: number;
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      // The limit holds for every line, however the bytes were chunked (a whole long line in one
      // DATA frame used to pass where the same line in pieces was refused).
      if (nl > MAX_LINE) return this.#tooLong();
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      if (!line.trim()) continue;
      let m: ControlMessage;
      try {
        m = parseMessage(line);
      } catch (err) {
        this.emit('invalid', err as Error);
        continue;
      }
      this.emit('message', m);
    }
    if (this.#buf.length > MAX_LINE) this.#tooLong();
  }

  #tooLong(): void {
    this.#buf = '';
    this.emit('invalid', new Error(`control message too long (over ${MAX_LINE} characters)`));
    this.#stream.destroy();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }
}
