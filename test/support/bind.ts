import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dnsQuery } from '../../src/dns/client.ts';
import { freeTcpUdpPort } from './free-udp-port.ts';

// A throwaway BIND 9 (Debian `bind9`: /usr/sbin/named) per test file: its own config in a temp
// dir, one TSIG key, dynamic zones that key may write TXT records in (`update-policy … zonesub
// TXT`: the narrowest grant that does the job), static zones, on a port free for UDP and TCP.

export interface BindZone {
  name: string;
  /** Records in zone-file syntax after the SOA and NS (e.g. `www 60 IN A 127.0.0.1`). */
  records?: string[];
  /** Whether the TSIG key may update TXT records under it. */
  dynamic?: boolean;
  /** Whether the TSIG key may update anything in it (a test writing "the customer's" records with nsupdate). */
  open?: boolean;
}

export interface Bind {
  port: number;
  /** Runs nsupdate (signed with the key file) with these commands; `send` is added. */
  nsupdate(commands: string[]): Promise<void>;
  /** `key "name" { algorithm hmac-sha256; secret "…"; };`, as tsig-keygen prints it. */
  keyFile: string;
  keyName: string;
  secret: string;
  stop(): Promise<void>;
}

/** A port free on 127.0.0.1 for both UDP and TCP right now (a DNS server needs both). */
export const freeDnsPort = freeTcpUdpPort;

export async function startBind(opts: { zones: BindZone[]; keyName?: string; secret?: string; recursion?: boolean }): Promise<Bind> {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-bind-'));
  const keyName = opts.keyName ?? 'tunn-acme';
  const secret = opts.secret ?? Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64');
  const keyFile = join(dir, 'tsig.key');
  const keyBlock = `key "${keyName}" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`;
  writeFileSync(keyFile, keyBlock, { mode: 0o600 });
  const port = await freeDnsPort();
  const zones = opts.zones.map((z) => {
    const file = join(dir, `${z.name}.zone`);
    writeFileSync(
      file,
      [`$ORIGIN ${z.name}.`, '$TTL 60', `@ IN SOA ns1.${z.name}. hostmaster.${z.name}. 1 3600 600 86400 60`, `@ IN NS ns1.${z.name}.`, `ns1 IN A 127.0.0.1`, ...(z.records ?? []), ''].join('\n'),
    );
    const policy = z.open ? `allow-update { key ${keyName}; };` : z.dynamic ? `update-policy { grant ${keyName} zonesub TXT; };` : '';
    return `zone "${z.name}" { type primary; file "${file}"; ${policy} };`;
  });
  const conf = join(dir, 'named.conf');
  writeFileSync(
    conf,
    [
      'options {',
      `  directory "${dir}";`,
      `  pid-file "${join(dir, 'named.pid')}";`,
      `  session-keyfile "${join(dir, 'session.key')}";`,
      `  managed-keys-directory "${dir}";`,
      `  listen-on port ${port} { 127.0.0.1; };`,
      '  listen-on-v6 { none; };',
      `  recursion ${opts.recursion ? 'yes; allow-recursion { 127.0.0.1; }' : 'no'};`,
      '  dnssec-validation no;',
      '  notify no;',
      '  allow-query { any; };',
      '};',
      'controls { };',
      keyBlock,
      ...zones,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('/usr/sbin/named', ['-g', '-c', conf, '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`named exited at start:\n${output}`);
    try {
      const r = await dnsQuery({ host: '127.0.0.1', port }, opts.zones[0]!.name, 'SOA', { timeoutMs: 500 });
      if (r.rcode === 'NOERROR') break;
    } catch {
      // not listening yet
    }
    if (i > 100) throw new Error(`named did not answer:\n${output}`);
    await sleep(100);
  }
  return {
    port,
    async nsupdate(commands) {
      const p = spawn('nsupdate', ['-k', keyFile], { stdio: ['pipe', 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      p.stdin!.end([`server 127.0.0.1 ${port}`, ...commands, 'send', ''].join('\n'));
      const [code] = (await once(p, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`nsupdate failed (${code}): ${err}`);
    },
    keyFile,
    keyName,
    secret,
    async stop() {
      process.removeListener('exit', kill);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
