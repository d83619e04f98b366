import '../src/cli/v8-setup.ts';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { createCa, issueLeaf } from '../src/certs/dev-ca.ts';
import { agentServerOptions, relaySessionOptions, SESSION_WINDOW } from '../src/protocol/h2-options.ts';

// The design floor for `npm run bench`: the smallest forwarder with tunn's data-plane design and
// nothing else. The agent dials the relay over TLS (ALPN tunn/1), the relay is the HTTP/2 client
// on that socket and opens one CONNECT stream per public TCP connection, the agent pipes each
// stream to a TCP connection to the origin. Same HTTP/2 settings, windows and V8 flags as tunn;
// no HTTP parsing, no headers rewritten, no identity, no metrics, one session. Whatever tunn
// costs beyond this row is tunn's own work; what this row costs is the design's on this machine.
//
//   node bench/floor.ts relay <ca-file>                  → prints "<agent port> <public port>"
//   node bench/floor.ts agent <agent port> <origin port> <ca-file>

const [role, ...args] = process.argv.slice(2);

if (role === 'relay') {
  const [caFile] = args as [string];
  const ca = await createCa('tunn bench floor');
  const leaf = await issueLeaf(ca, ['floor.invalid']);
  fs.writeFileSync(caFile, ca.certPem);
  let session: http2.ClientHttp2Session | undefined;
  const agents = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, ALPNProtocols: ['tunn/1'] }, (sock) => {
    sock.setNoDelay(true);
    session = http2.connect('https://floor.invalid', { ...relaySessionOptions, createConnection: () => sock });
    session.once('remoteSettings', () => session?.setLocalWindowSize(SESSION_WINDOW));
  });
  const pub = net.createServer((client) => {
    client.setNoDelay(true);
    if (!session || session.closed) return void client.destroy();
    const stream = session.request({ ':method': 'CONNECT', ':authority': 'floor.invalid' }, { endStream: false });
    client.pipe(stream).pipe(client);
    client.on('error', () => stream.destroy());
    client.on('close', () => stream.destroy());
    stream.on('error', () => client.destroy());
    stream.on('close', () => client.destroy());
  });
  await Promise.all([new Promise((r) => agents.listen(0, '127.0.0.1', () => r(null))), new Promise((r) => pub.listen(0, '127.0.0.1', () => r(null)))]);
  process.stdout.write(`${(agents.address() as net.AddressInfo).port} ${(pub.address() as net.AddressInfo).port}\n`);
} else if (role === 'agent') {
  const [relayPort, originPort, caFile] = args as [string, string, string];
  const sock = tls.connect({ host: '127.0.0.1', port: Number(relayPort), servername: 'floor.invalid', ca: fs.readFileSync(caFile), ALPNProtocols: ['tunn/1'] });
  sock.setNoDelay(true);
  const server = http2.createServer(agentServerOptions);
  server.on('session', (s) => s.once('remoteSettings', () => s.setLocalWindowSize(SESSION_WINDOW)));
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    const target = net.connect(Number(originPort), '127.0.0.1');
    target.setNoDelay(true);
    stream.pipe(target).pipe(stream);
    target.on('error', () => stream.destroy());
    target.on('close', () => stream.destroy());
    stream.on('error', () => target.destroy());
    stream.on('close', () => target.destroy());
  });
  sock.once('secureConnect', () => server.emit('connection', sock));
  sock.on('close', () => process.exit(1));
} else {
  process.stderr.write('usage: node bench/floor.ts relay <ca-file> | agent <agent port> <origin port> <ca-file>\n');
  process.exit(2);
}
