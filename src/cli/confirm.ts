import { createInterface } from 'node:readline';

// Questions before destructive commands (`tunn domain delete`): asked only when a person is at
// a terminal; scripts (no TTY) and --yes go ahead, as with `gh repo delete --yes`.

export interface PromptIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream & { isTTY?: boolean };
}

const processIo = (): PromptIo => ({ input: process.stdin, output: process.stderr });

/**
 * Resolves true when the command may go ahead: --yes, no terminal to ask at, or the person
 * answered y/yes. Anything else (Enter, n, end of input) is no.
 */
export async function confirm(question: string, opts: { yes?: boolean; io?: PromptIo } = {}): Promise<boolean> {
  if (opts.yes) return true;
  const io = opts.io ?? processIo();
  if (!io.input.isTTY || !io.output.isTTY) return true;
  const rl = createInterface({ input: io.input, output: io.output, terminal: false });
  try {
    io.output.write(`${question} [y/N] `);
    // The first line, or '' at the end of input (Ctrl-D).
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
