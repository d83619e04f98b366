import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { tunnelHost } from './connect.ts';
import { Command } from 'commander';
import { kindReadyEvent, parseKindTarget, parseKindTunnel, registerKindCommands } from './kind-commands.ts';
import { relayOptionsFrom } from './run-relay.ts';

describe('tunn tcp|udp|tls flags', () => {
  it('reads a port, host:port and [v6]:port as the target', () => {
    assert.deepEqual(parseKindTarget('tcp', '5432'), { host: 'localhost', port: 5432 });
    assert.deepEqual(parseKindTarget('udp', 'dns.internal:53'), { host: 'dns.internal', port: 53 });
    assert.deepEqual(parseKindTarget('tls', '[::1]:8443'), { host: '::1', port: 8443 });
  });

  it('says what a target looks like, and that a URL is the wrong kind of target', () => {
    assert.throws(() => parseKindTarget('tcp', 'http://localhost:5432'), (e: Error) => isTunnError(e, 'INVALID_INPUT') && /a tcp tunnel carries bytes, not URLs: drop the scheme/.test(e.message));
    assert.throws(() => parseKindTarget('udp', '70000'), /"70000" is not a udp target: use a port \(5432\) or host:port/);
  });

  it('refuses --public with -a, as for HTTP tunnels', () => {
    assert.throws(() => parseKindTunnel('tcp', '25565', { public: true, allow: ['ann@example.com'] }), /--public and -a do not go together/);
  });

  it('takes --proxy-protocol on tcp and tls only, and --backend raw|tcp on tls (raw by default)', () => {
    assert.equal(parseKindTunnel('tcp', '5432', { proxyProtocol: true }).proxyProtocol, true);
    assert.throws(() => parseKindTunnel('udp', '53', { proxyProtocol: true }), /--proxy-protocol is for tcp and tls tunnels/);
    assert.equal(parseKindTunnel('tls', '8443', {}).backend, 'raw');
    assert.equal(parseKindTunnel('tls', '5432', { backend: 'tcp', allow: ['group:eng'] }).backend, 'tcp');
    assert.throws(() => parseKindTunnel('tls', '8443', { backend: 'passthrough' }), /--backend "passthrough": use raw .* or tcp/);
  });

  it('takes --terminate-at on tls --backend tcp, and refuses it (and the other agent-TLS flags) with --backend raw, saying why', () => {
    assert.equal(parseKindTunnel('tls', '5432', { backend: 'tcp', terminateAt: 'agent', fallback: true }).terminateAt, 'agent');
    assert.equal(parseKindTunnel('tls', '5432', { backend: 'tcp', terminateAt: 'relay' }).terminateAt, 'relay');
    assert.equal(parseKindTunnel('tls', '5432', { backend: 'tcp', fallback: true }).terminateAt, undefined, 'absent: the domain\'s default, then relay');
    // Raw (the default): the target terminates, so there is nothing to terminate; the message says what to do.
    for (const o of [{ terminateAt: 'agent' }, { backend: 'raw', terminateAt: 'relay' }]) {
      assert.throws(
        () => parseKindTunnel('tls', '8443', { ...o, fallback: true }),
        (e: Error) => isTunnError(e, 'INVALID_INPUT') && /--terminate-at: with --backend raw \(the default\) TLS ends at your target/.test(e.message) && /Add --backend tcp/.test(e.message),
      );
    }
    assert.throws(() => parseKindTunnel('tls', '8443', { tlsCert: 'c.pem', tlsKey: 'k.pem', fallback: false }), /--tls-cert, --tls-key, --no-fallback: with --backend raw/);
    assert.throws(() => parseKindTunnel('tls', '5432', { backend: 'tcp', terminateAt: 'target' }), (e: Error) => isTunnError(e, 'INVALID_INPUT') && /--terminate-at "target": use agent .* or relay/.test(e.message));
  });

  it('takes --alpn protocol ids (repeatable) on tls --backend tcp, and says what an id looks like', () => {
    assert.deepEqual(parseKindTunnel('tls', '5432', { backend: 'tcp', terminateAt: 'agent', alpn: ['postgresql', 'x-custom/1'] }).alpn, ['postgresql', 'x-custom/1']);
    assert.throws(() => parseKindTunnel('tls', '5432', { backend: 'tcp', alpn: ['my proto'] }), (e: Error) => isTunnError(e, 'INVALID_INPUT') && /--alpn "my proto": an ALPN protocol id is 1-255 printable characters without spaces/.test(e.message));
    assert.throws(() => parseKindTunnel('tls', '5432', { backend: 'tcp', alpn: ['acme-tls/1'] }), /reserved for certificate validations/);
    assert.throws(() => parseKindTunnel('tls', '8443', { alpn: ['postgresql'] }), /--alpn: with --backend raw/);
  });

  it('`tunn tls --help` shows --terminate-at and the agent-TLS flags; tcp and udp do not take them', () => {
    const program = new Command().exitOverride();
    registerKindCommands(program);
    const help = (k: string): string => program.commands.find((c) => c.name() === k)!.helpInformation();
    for (const flag of ['--terminate-at', '--no-fallback', '--tls-cert', '--tls-key', '--client-ca', '--keep-key', '--acme-directory', '--alpn']) assert.ok(help('tls').includes(flag), flag);
    assert.match(help('tls').replace(/\s+/g, ' '), /--backend tcp --terminate-at agent/);
    assert.ok(!help('tcp').includes('--terminate-at'));
    assert.ok(!help('udp').includes('--terminate-at'));
  });

  it('shapes the --json ready event: url, host, and port where one was assigned', () => {
    assert.deepEqual(kindReadyEvent('tcp', { host: 'mc.tunn.example.com', relayHost: 'tunn.example.com', port: 20007 }), { event: 'ready', url: 'tcp://tunn.example.com:20007', host: 'mc.tunn.example.com', port: 20007 });
    assert.deepEqual(kindReadyEvent('udp', { host: 'wg.tunn.example.com', relayHost: 'tunn.example.com', port: 20001 }), { event: 'ready', url: 'udp://tunn.example.com:20001', host: 'wg.tunn.example.com', port: 20001 });
    assert.deepEqual(kindReadyEvent('tcp', { host: 'db.tunn.example.com', relayHost: 'tunn.example.com' }), { event: 'ready', url: 'tcp://db.tunn.example.com', host: 'db.tunn.example.com' });
    assert.deepEqual(kindReadyEvent('tls', { host: 'app.tunn.example.com', relayHost: 'tunn.example.com' }), { event: 'ready', url: 'https://app.tunn.example.com', host: 'app.tunn.example.com' });
  });
});

describe('tunn connect host', () => {
  it('takes a bare name under the relay\'s domain, and a full host as given (normalised)', () => {
    assert.equal(tunnelHost('db', 'https://tunn.example.com'), 'db.tunn.example.com');
    assert.equal(tunnelHost('DB.Example.COM.', 'https://tunn.example.com:8443'), 'db.example.com');
  });
});

describe('tunn relay --tcp-ports / --udp-ports', () => {
  const base = { dev: true, dataDir: '/tmp/unused-tunn-relay' };
  it('reads ranges and the limits', () => {
    const o = relayOptionsFrom({ ...base, tcpPorts: '20000-20999', udpPorts: '21000-21099', portQuota: '3', udpFlowIdle: '30' }, {});
    assert.equal(o.tcpPorts, '20000-20999');
    assert.equal(o.udpPorts, '21000-21099');
    assert.equal(o.portQuota, 3);
    assert.equal(o.udpFlowIdle, 30);
  });
  it('reports every bad range and limit at once, saying what to write', () => {
    assert.throws(
      () => relayOptionsFrom({ ...base, tcpPorts: '20000:20999', udpPorts: '9-1', portConnections: '0' }, {}),
      (e: Error) =>
        isTunnError(e, 'CONFIG_INVALID') &&
        e.message.includes('--tcp-ports: "20000:20999" is not a port range: write LOW-HIGH, e.g. 20000-20999') &&
        e.message.includes('--udp-ports: "9-1": the low port comes first, e.g. 1-9') &&
        e.message.includes('--port-connections: must be at least 1'),
    );
  });
});
