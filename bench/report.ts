import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

// What `npm run bench` writes and prints: the machine, bench/out/<timestamp>.json, the tables.

const ROOT = resolve(import.meta.dirname, '..');
const GiB = 1024 ** 3;

export function machineInfo(): Record<string, unknown> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / GiB),
    node: process.version,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
}

/** Writes bench/out/<timestamp>.json and prints `text`, the machine and the file. */
export function writeOut(started: Date, out: { machine: Record<string, unknown> } & Record<string, unknown>, text: string): void {
  mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
  const file = join(ROOT, 'bench/out', `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(`${text}\n\nmachine: ${JSON.stringify(out.machine)}\nJSON: ${file}\n`);
}

/** The TCP and UDP tables and their targets (bench/kinds.ts). */
export function kindsText(k: { rows: string[][]; targets: Record<string, boolean> }): string {
  const tables: string[][][] = [];
  for (const row of k.rows) {
    if (row[0] === 'tcp' || row[0] === 'udp') tables.push([row]);
    else tables.at(-1)!.push(row);
  }
  const text = tables.map((rows) => {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    return rows.map((r, j) => {
      const line = `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
      return j === 0 ? `${line}\n|${widths.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
    }).join('\n');
  });
  const note = k.rows.some((r) => r[0] === 'tcp') ? '\n(tunn connect crosses two encrypted hops, client→relay and relay→agent; ssh -L crosses one.)' : '';
  return `\n${text.join('\n\n')}${note}\n\nTargets (issue 11):\n${Object.entries(k.targets).map(([name, v]) => `- ${v ? 'met    ' : 'MISSED '} ${name}`).join('\n')}\n`;
}
