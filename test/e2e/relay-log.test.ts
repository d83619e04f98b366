import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCli, until, type Proc } from './harness.ts';

// Security property: a visitor cannot drive the operator's terminal through the relay's log.
// `tunn relay` in a terminal prints human lines on stderr; a request whose path (decoded by the
// API) or Host carries ESC, BEL or a C1 CSI must show up escaped, never raw.

const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

function send(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from(bytes, 'latin1')));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve(out.split('\r\n')[0]!));
  });
}

describe('relay log in a terminal', () => {
  let relay: Proc;
  let dataDir: string;
  let httpPort: number;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tunn-relay-log-'));
    relay = startCli(['relay', '--dev', '--https-port', '0', '--http-port', '0', '--data-dir', dataDir]);
    await until(() => relay.stderr.some((l) => l.includes('relay ready')), 30_000, 'the relay to be ready');
    httpPort = Number(/httpPort=(\d+)/.exec(relay.stderr.find((l) => l.includes('relay ready'))!)![1]);
  });
  after(async () => {
    await relay?.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('escapes control characters from a visitor’s path and Host', async () => {
    // The reviewer's requests: an OSC title and SGR colour in the path (percent-encoded, decoded
    // by the API before it logs), and a raw C1 CSI in the path and the Host of a tunnel request.
    const a = await send(httpPort, 'GET /v1/%1b]0;PWNED-TITLE%07%1b[31mRED%1b[0m HTTP/1.1\r\nHost: tunn.localhost\r\nConnection: close\r\n\r\n');
    const b = await send(httpPort, 'GET /x\x9b31mC1 HTTP/1.1\r\nHost: nope\x9b33m.tunn.localhost\r\nConnection: close\r\n\r\n');
    assert.match(a, /^HTTP\/1\.1 [45]\d\d/);
    assert.match(b, /^HTTP\/1\.1 [45]\d\d/);
    await until(() => relay.stderr.filter((l) => l.includes('answered by the relay')).length >= 2, 15_000, 'two log lines');
    const lines = relay.stderr.filter((l) => l.includes('answered by the relay'));
    for (const l of relay.stderr) assert.ok(!RAW_CONTROL.test(l), `raw control character in ${JSON.stringify(l)}`);
    assert.ok(lines.some((l) => l.includes('\\x1b]0;PWNED-TITLE\\x07')), lines.join('\n'));
  });
});
