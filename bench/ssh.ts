import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

// The OpenSSH side of the benchmarks (bench/run.ts, bench/kinds.ts): a throwaway sshd on a free
// loopback port and `ssh -N -R` / `ssh -N -L` forwards through it (default cipher).

const exec = promisify(execFile);

export type Cleanups = (() => Promise<void> | void)[];

export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} did not open`);
}

export interface Sshd {
  port: number;
  pid: number;
  dir: string;
}

export async function startSshd(cleanups: Cleanups): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-bench-ssh-'));
  chmodSync(dir, 0o700);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  chmodSync(join(dir, 'authorized_keys'), 0o600);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => void sshd.kill());
  await waitPort(port);
  return { port, pid: sshd.pid!, dir };
}

/** `ssh -N -R 127.0.0.1:<new>:127.0.0.1:<targetPort>` (or -L): returns the forwarded port and the ssh client's pid. */
export async function sshForward(sshd: Sshd, how: '-R' | '-L', targetPort: number, cleanups: Cleanups): Promise<{ port: number; pid: number }> {
  const fwd = await freePort();
  const user = process.env.USER ?? 'root';
  const ssh = spawn(
    'ssh',
    ['-N', '-i', join(sshd.dir, 'client_key'), '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${join(sshd.dir, 'known_hosts')}`, '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR', '-p', String(sshd.port), how, `127.0.0.1:${fwd}:127.0.0.1:${targetPort}`, `${user}@127.0.0.1`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  cleanups.push(() => void ssh.kill());
  await waitPort(fwd);
  return { port: fwd, pid: ssh.pid! };
}
