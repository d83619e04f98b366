import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { createToken, NODE, request, ROOT, startAgent, startRelay, tmpDir, type AgentHandle, type RelayHandle } from './harness.ts';

// The README's "What the service behind the tunnel receives" says how to verify
// Tunn-Jwt-Assertion on localhost. This runs its curl line and its JavaScript as written (only
// the dev ports replaced by the test relay's) in a real service behind a private tunnel.
// Security property: a service that follows the README accepts the relay's assertion for its
// own origin and refuses one the relay did not sign.

/** The fenced blocks of the README, in order, with their language. */
function fencedBlocks(md: string): { lang: string; code: string }[] {
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

describe('README: verifying Tunn-Jwt-Assertion on localhost', { timeout: 120_000 }, () => {
  const dir = tmpDir('tunn-readme-jwks-');
  let relay: RelayHandle;
  let agent: AgentHandle;
  let service: ChildProcess;
  let servicePort: number;
  let token: string;
  let audience: string;

  before(async () => {
    const blocks = fencedBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    const at = blocks.findIndex((b) => b.lang === 'sh' && b.code.includes('/.well-known/jwks.json > jwks.json'));
    assert.ok(at >= 0, 'the README has the curl line for localhost');
    const js = blocks.slice(at + 1).find((b) => b.lang === 'js');
    assert.ok(js && js.code.includes('jwtVerify'), 'followed by the JavaScript that verifies');
    relay = await startRelay();
    const local = (code: string) => code.replaceAll(':8080', `:${relay.httpPort}`).replaceAll(':8443', `:${relay.httpsPort}`);
    audience = /audience: '([^']+)'/.exec(local(js.code))![1]!;

    // The curl line, in the service's directory.
    const curl = spawnSync('sh', ['-c', local(blocks[at]!.code)], { cwd: dir.path, encoding: 'utf8' });
    assert.equal(curl.status, 0, curl.stderr);

    // The JavaScript as the body of a request handler: its imports at the top, the rest per request.
    const lines = local(js.code).split('\n');
    const imports = lines.filter((l) => l.startsWith('import '));
    const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
    writeFileSync(
      join(dir.path, 'service.mjs'),
      `import http from 'node:http';\n${imports.join('\n')}\n` +
        `const server = http.createServer(async (req, res) => {\n  try {\n${body}\n` +
        `    res.end(JSON.stringify({ email: payload.email, header: req.headers['tunn-user-email'] }));\n` +
        `  } catch (err) {\n    res.writeHead(401);\n    res.end(String(err.code ?? err));\n  }\n});\n` +
        `server.listen(0, '127.0.0.1', () => console.log(server.address().port));\n`,
    );
    symlinkSync(join(ROOT, 'node_modules'), join(dir.path, 'node_modules')); // `jose`, as the service's own dependency
    service = spawn(NODE, ['service.mjs'], { cwd: dir.path, stdio: ['ignore', 'pipe', 'inherit'] });
    const [first] = (await once(createInterface({ input: service.stdout! }), 'line')) as [string];
    servicePort = Number(first);

    token = await createToken(relay, 'alice@example.com');
    agent = await startAgent(relay, token, servicePort, ['-n', new URL(audience).hostname.split('.')[0]!]);
  });

  after(async () => {
    service?.kill();
    await agent?.stop();
    await relay?.stop();
    dir.remove();
  });

  test("accepts the relay's assertion for the tunnel's origin", async () => {
    assert.equal(agent.httpUrl, audience, "the README's audience is the origin the visitor used");
    const res = await request(`${agent.httpUrl}/`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text), { email: 'alice@example.com', header: 'alice@example.com' });
  });

  test('refuses an assertion the relay did not sign, sent straight to the service', async () => {
    const kid = (JSON.parse(readFileSync(join(dir.path, 'jwks.json'), 'utf8')) as { keys: { kid: string }[] }).keys[0]!.kid;
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ email: 'alice@example.com' }).setProtectedHeader({ alg: 'ES256', kid }).setAudience(audience).setIssuedAt().setExpirationTime('1m').sign(privateKey);
    const res = await request(`http://127.0.0.1:${servicePort}/`, { headers: { 'tunn-jwt-assertion': forged, 'tunn-user-email': 'alice@example.com' } });
    assert.equal(res.status, 401);
    assert.equal(res.text, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  });
});
