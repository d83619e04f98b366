import { readFileSync } from 'node:fs';

// What people type that is not quite a tunn command: ngrok's `tunn http 8080`, typos such as
// `tunn logn`, and `tunn version`.

/** tunn's version, from the package it runs from. */
export function tunnVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * `tunn http <target> …` (the ngrok habit) means `tunn <target> …`. Only the first word is
 * looked at, so a target or a flag value spelled "http" elsewhere is left alone.
 */
export function withoutHttpWord(argv: string[]): string[] {
  return argv[0] === 'http' && argv.length > 1 && !argv[1]!.startsWith('-') ? argv.slice(1) : argv;
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The command nearest to `word`, if it is close enough to be a typo of it (at most 2 edits, and less than half the word). */
export function nearestCommand(word: string, names: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: { name: string; dist: number } | undefined;
  for (const name of names) {
    const dist = editDistance(w, name);
    if (dist <= 2 && dist < Math.max(2, name.length / 2) && (!best || dist < best.dist)) best = { name, dist };
  }
  return best?.name;
}

/** A first word that cannot be a target (a port, host:port or URL) reads as a command name. */
export function looksLikeCommandWord(word: string): boolean {
  return /^[a-z][a-z-]*$/i.test(word);
}

/**
 * The message for a word that is not one of `path`'s commands (`path` is "tunn" or e.g.
 * "tunn relay"), naming the nearest command if it looks like a typo of one.
 */
export function unknownCommandMessage(path: string, word: string, names: readonly string[]): string {
  const near = nearestCommand(word, names);
  const hint = near ? `: did you mean \`${path} ${near}\`?` : '';
  return `"${word}" is not a \`${path}\` command${hint} (\`${path} --help\` lists them)`;
}
