// A status line kept at the bottom of the terminal under the request log, redrawn in place
// ("● online (2/2 sessions) · 12 requests · 3 refused"), like ngrok's live view but without
// taking the screen over: the log above stays in the scrollback and can be copied. Every
// write of the agent's output goes through `print`, which lifts the status line, writes,
// and puts it back. Off (plain lines only) when not a terminal, with --no-color or NO_COLOR.

const CLEAR_LINE = '\r\x1b[2K';

export interface StatusTerminal {
  write(s: string): unknown;
  readonly columns?: number;
}

export class LiveStatus {
  readonly #term: StatusTerminal | undefined;
  #text = '';
  #shown = false;
  #ended = false;

  /** `term`: where the status line is drawn; undefined: no status line (plain output). */
  constructor(term: StatusTerminal | undefined) {
    this.#term = term;
  }

  get enabled(): boolean {
    return this.#term !== undefined;
  }

  /** Writes `text` (whole lines) to `stream` above the status line. */
  print(stream: { write(s: string): unknown }, text: string): void {
    if (this.#term && this.#shown) {
      this.#term.write(CLEAR_LINE);
      this.#shown = false;
    }
    stream.write(text);
    this.#draw();
  }

  /** Replaces the status text (`visibleLength`: its length without colour codes). */
  set(text: string, visibleLength = text.length): void {
    const width = (this.#term?.columns || 80) - 1;
    // A status line longer than the terminal would wrap, and clearing one line would leave the rest.
    this.#text = visibleLength > width ? text.replace(/\x1b\[[0-9;]*m/g, '').slice(0, Math.max(0, width - 1)) + '…' : text;
    this.#draw();
  }

  /** Takes the status line away (on exit). */
  end(): void {
    if (this.#term && this.#shown) this.#term.write(CLEAR_LINE);
    this.#shown = false;
    this.#ended = true;
  }

  #draw(): void {
    if (!this.#term || !this.#text || this.#ended) return;
    this.#term.write(`${CLEAR_LINE}${this.#text}`);
    this.#shown = true;
  }
}
