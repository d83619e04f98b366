// `--tcp-ports 20000-20999`: a range of public ports the relay may hand out.

export interface PortRange {
  low: number;
  high: number;
}

/**
 * Parses "LOW-HIGH" (or one port, "20000"). Returns the range, or the problem in words that say
 * what to write instead (for the config's all-errors-at-once report).
 */
export function parsePortRange(text: string): { ok: true; range: PortRange } | { ok: false; message: string } {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (!m) return { ok: false, message: `"${text}" is not a port range: write LOW-HIGH, e.g. 20000-20999` };
  const low = Number(m[1]);
  const high = Number(m[2] ?? m[1]);
  if (low < 1 || high > 65535) return { ok: false, message: `"${text}": ports are 1-65535` };
  if (low > high) return { ok: false, message: `"${text}": the low port comes first, e.g. ${high}-${low}` };
  return { ok: true, range: { low, high } };
}

export function formatPortRange(r: PortRange): string {
  return r.low === r.high ? String(r.low) : `${r.low}-${r.high}`;
}
