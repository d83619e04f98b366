import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { createDomain, markDomainVerified } from '../../src/domains/records.ts';
import { ensureAccount } from '../../src/store/accounts.ts';
import { openStore } from '../../src/store/store.ts';
import { readFileSync } from 'node:fs';
import { startCluster, type TestCluster } from '../support/cluster.ts';
import { readyOf, request, startAgent, startCli, type AgentHandle, type Proc, type RelayHandle } from './harness.ts';

// Issue 14: changes take effect on every relay within 2 s. PostgreSQL triggers (migration 0010)
// NOTIFY tunn_identity, whoever makes the change (the CLI on the database, or another relay's
// API); every relay LISTENs, drops its caches, reloads its signing keys and re-checks its live
// connections at once. The periodic re-reads remain the safety net. Real relay processes; each
// test measures the time from the change (the command's answer) to the effect on another relay,
// polled with a ceiling of 3 s (2 s the issue asks, plus a margin for a shared machine), and logs it.

const CEILING_MS = 3000;

/** Polls `cond` until it holds; resolves with the milliseconds it took from `since`, rejects past the ceiling. */
async function within(since: number, what: string, cond: () => boolean | Promise<boolean>): Promise<number> {
  while (!(await cond())) {
    if (Date.now() - since > CEILING_MS) throw new Error(`${what}: not within ${CEILING_MS} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const took = Date.now() - since;
  console.log(`# ${what}: ${took} ms`);
  return took;
}

/** A streaming GET that stays open; `closed` resolves when the relay ends it. */
function openStream(url: string, ca: string, token: string): Promise<{ closed: Promise<void>; isOpen(): boolean }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = https.request({ host: '127.0.0.1', port: u.port, path: u.pathname, servername: u.hostname, ca, headers: { host: u.host, authorization: `Bearer ${token}`, accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
      let open = true;
      const closed = new Promise<void>((r) => {
        const done = () => ((open = false), r());
        res.on('close', done);
        res.on('error', done);
        res.on('end', done);
      });
      res.once('data', () => resolve({ closed, isOpen: () => open }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('identity and policy changes reach every relay within 2 s (LISTEN/NOTIFY, real processes)', () => {
  let cluster: TestCluster;
  let a: RelayHandle;
  let b: RelayHandle;
  let c: RelayHandle;
  let origin: http.Server;
  let originPort = 0;
  const procs: { stop(): Promise<void> | void }[] = [];

  before(async () => {
    cluster = await startCluster({ relays: 3, prefix: 'tunn-e2e-cluster-notify-' });
    [a, b, c] = cluster.relays as [RelayHandle, RelayHandle, RelayHandle];
    origin = http.createServer((req, res) => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('start\n'); // and stays open
        return;
      }
      res.end(String(req.headers['tunn-jwt-assertion'] ?? 'no assertion'));
    });
    origin.listen(0, '127.0.0.1');
    await once(origin, 'listening');
    originPort = (origin.address() as AddressInfo).port;
  });
  after(async () => {
    for (const p of procs) await p.stop();
    origin?.closeAllConnections();
    origin?.close();
    await cluster?.stop();
  });

  const cli = async (args: string[], event: string): Promise<Record<string, unknown>> => {
    const p = startCli([...args, '--json'], { env: cluster.env });
    const line = await p.waitFor((l) => l.event === event || l.event === 'fatal' || l.event === 'error', 30_000).catch((err: Error) => ({ event: 'error', err: `${err.message}; stderr: ${p.stderr.join('\n')}` }));
    assert.equal(line.event, event, JSON.stringify(line));
    return line;
  };
  const kidOfAssertion = async (r: RelayHandle, host: string, token: string): Promise<string> => {
    const res = await request(`https://${host}:${r.httpsPort}/assertion`, { ca: r.ca, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    assert.equal(res.status, 200, res.text);
    return String(decodeProtectedHeader(res.text).kid);
  };
  const jwksKids = async (r: RelayHandle): Promise<string[]> => {
    const res = await request(`${r.url}/.well-known/jwks.json`, { ca: r.ca });
    return (JSON.parse(res.text) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
  };

  // Security property: retiring a key acts like revoking every token it signed, on every relay:
  // a live agent session (B) and a live visitor connection (through C, decided at B) that rely
  // on it are cut, and its public half leaves every relay's JWKS.
  it('a key rotated with the CLI signs B\'s assertions at once; retiring the old one cuts, on every relay, what it signed', async () => {
    const oldOwner = await cluster.token('owner@example.com');
    const oldAnn = await cluster.token('ann@example.com');
    const oldAgent = await startAgent(b, oldOwner, originPort, ['-n', 'keys', '-a', 'ann@example.com']);
    procs.push(oldAgent);
    const oldKid = await kidOfAssertion(b, oldAgent.host, oldAnn);

    const rotated = await cli(['relay', 'keys', 'rotate', '--store-file', cluster.storeFile], 'rotated');
    const newKid = String(rotated.kid);
    await within(Date.now(), 'B signs assertions with the rotated key', async () => (await kidOfAssertion(b, oldAgent.host, oldAnn)) === newKid);
    assert.notEqual(newKid, oldKid);

    // Live now: an agent on C and a visitor stream through A, both with tokens of the new key; a
    // visitor stream through C to B's tunnel with a token of the old key.
    const newAgent: AgentHandle = await startAgent(c, await cluster.token('owner@example.com'), originPort, ['-n', 'fresh', '-a', 'ann@example.com']);
    procs.push(newAgent);
    const newAnn = await cluster.token('ann@example.com');
    const oldStream = await openStream(`https://${oldAgent.host}:${c.httpsPort}/stream`, c.ca, oldAnn);
    const newStream = await openStream(`https://${newAgent.host}:${a.httpsPort}/stream`, a.ca, newAnn);
    for (const r of [a, b, c]) assert.ok((await jwksKids(r)).includes(oldKid));

    await cli(['relay', 'keys', 'retire', oldKid, '--store-file', cluster.storeFile], 'retired');
    const since = Date.now();
    await within(since, "B ends the agent session whose token the retired key signed", () => oldAgent.proc.lines.some((l) => /signing key of the token this agent signed in with was retired/.test(JSON.stringify(l))));
    await within(since, 'the visitor stream through C relying on the retired key is cut', () => !oldStream.isOpen());
    for (const r of [a, b, c]) await within(since, `${r.url} no longer publishes the retired key`, async () => !(await jwksKids(r)).includes(oldKid));
    assert.ok(b.proc.lines.some((l) => l.event === 'signing_key_retired_cut'), "B's log says what it cut and why");
    assert.ok(newStream.isOpen(), 'a stream whose token the new key signed stays');
    const refused = await request(`https://${newAgent.host}:${a.httpsPort}/assertion`, { ca: a.ca, headers: { authorization: `Bearer ${oldAnn}`, accept: 'application/json' } });
    assert.equal(refused.status, 401, `a token of the retired key is refused: ${refused.text}`);
    assert.equal((await request(`https://${newAgent.host}:${a.httpsPort}/assertion`, { ca: a.ca, headers: { authorization: `Bearer ${newAnn}`, accept: 'application/json' } })).status, 200);
  });

  it('a domain share made through B is honoured on C, and an unshare takes the tunnel on C offline within 2 s', async () => {
    // carol's verified custom domain, as `tunn domain add` + verify leave it (DNS is not what this tests).
    const store = await openStore(readFileSync(cluster.storeFile, 'utf8').trim());
    try {
      const carol = await ensureAccount(store, 'carol@example.com');
      await createDomain(store, { accountId: carol.id, acmeId: carol.acme_id, domain: 'shop.example.test', relayDomain: a.domain });
      await markDomainVerified(store, 'shop.example.test');
    } finally {
      await store.close();
    }
    const carolFile = await cluster.tokenFile('carol@example.com');
    const bobFile = await cluster.tokenFile('bob@example.com');
    const bobTcp = (): Proc => startCli(['tcp', String(originPort), '-n', 'bobdb', '-d', 'shop.example.test', '--relay', c.url, '--relay-ca', c.caPath, '--token-file', bobFile, '--json']);
    const before = bobTcp();
    const refused = await before.waitFor((l) => l.event === 'ready' || l.event === 'fatal', 30_000);
    await before.kill();
    assert.equal(refused.event, 'fatal', 'not shared yet: refused');
    assert.match(JSON.stringify(refused), /not a custom domain you can use on this relay/);

    await cli(['domain', 'share', 'shop.example.test', 'bob@example.com', '--relay', b.url, '--relay-ca', b.caPath, '--token-file', carolFile], 'domain');
    const shared = Date.now();
    const agent = bobTcp();
    procs.push({ stop: () => agent.kill() });
    const ready = await readyOf(agent);
    console.log(`# the share made through B honoured on C: agent ready ${Date.now() - shared} ms after (its start included)`);
    const host = String(ready.host);

    await cli(['domain', 'unshare', 'shop.example.test', 'bob@example.com', '--relay', b.url, '--relay-ca', b.caPath, '--token-file', carolFile], 'domain');
    await within(Date.now(), 'C takes the tunnel on the unshared domain offline', () => c.proc.lines.some((l) => l.host === host && /lost its right to its domain/.test(JSON.stringify(l))));
  });

  it('a grant added through B lets a visitor through C into a tunnel held on A; removing it cuts the live stream within 2 s', async () => {
    const ownerFile = await cluster.tokenFile('owner@example.com');
    const agent = await startAgent(a, await cluster.token('owner@example.com'), originPort, ['-n', 'policy', '-a', 'ann@example.com']);
    procs.push(agent);
    const bob = await cluster.token('bob@example.com');
    const get = async () => (await request(`https://${agent.host}:${c.httpsPort}/`, { ca: c.ca, headers: { authorization: `Bearer ${bob}`, accept: 'application/json' } })).status;
    assert.equal(await get(), 403, 'bob is not on the allow-list');

    const added = await cli(['grant', 'add', agent.host, 'bob@example.com', '--for', '1h', '--relay', b.url, '--relay-ca', b.caPath, '--token-file', ownerFile], 'grant');
    await within(Date.now(), 'a visitor through C is let in by the grant made through B', async () => (await get()) === 200);
    const stream = await openStream(`https://${agent.host}:${c.httpsPort}/stream`, c.ca, bob);

    await cli(['grant', 'rm', String((added.grant as { id: string }).id), '--relay', b.url, '--relay-ca', b.caPath, '--token-file', ownerFile], 'grant_removed');
    const since = Date.now();
    await within(since, "A cuts bob's live stream (carried through C) once the grant is gone", () => !stream.isOpen());
    assert.equal(await get(), 403);
  });
});
