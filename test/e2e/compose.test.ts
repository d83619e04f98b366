import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { relaySchema } from '../../src/config/config.ts';
import { envName, fileKey, isSecretKey, SECRET_KEYS } from '../../src/config/secrets.ts';
import { ROOT } from './harness.ts';

// deploy/compose.yaml (issue 14): three relays and PostgreSQL. There is no Docker here and no YAML
// package in the repo, so this reads the file as text: its services, the relays' settings against
// the relay's own configuration schema, and that no secret is written inline.

const text = readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8');
const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));

/** The `key: value` lines of a top-level block, up to the next top-level key. */
function block(name: string): string[] {
  const start = lines.findIndex((l) => l === `${name}:` || l.startsWith(`${name}: &`));
  assert.ok(start >= 0, `no top-level ${name}: in deploy/compose.yaml`);
  const end = lines.findIndex((l, i) => i > start && /^\S/.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Each service's lines (two-space indented names under services:). */
function services(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string | undefined;
  for (const l of block('services')) {
    const m = /^ {2}([\w-]+):\s*$/.exec(l);
    if (m) out.set((cur = m[1]!), []);
    else if (cur && l.trim()) out.get(cur)!.push(l);
  }
  return out;
}

describe('deploy/compose.yaml', () => {
  it('is YAML of the shape compose reads: spaces only, no tabs, every top-level key known', () => {
    assert.ok(!text.includes('\t'), 'tabs are not allowed in YAML indentation');
    const top = lines.filter((l) => /^\S/.test(l)).map((l) => l.split(':')[0]);
    assert.deepEqual(top, ['x-relay', 'services', 'secrets', 'volumes']);
  });

  it('runs PostgreSQL and three relays built from the repo Dockerfile, each with its own node URL and volume', () => {
    const s = services();
    assert.deepEqual([...s.keys()], ['postgres', 'relay-1', 'relay-2', 'relay-3']);
    assert.match(block('x-relay').join('\n'), /build:\n\s+context: \.\.\n\s+dockerfile: Dockerfile/);
    const urls = new Set<string>();
    for (const name of ['relay-1', 'relay-2', 'relay-3']) {
      const body = s.get(name)!.join('\n');
      assert.match(body, /<<: \*relay\b/, `${name} uses the shared relay settings`);
      const url = /TUNN_NODE_URL: (https:\/\/\S+)/.exec(body)?.[1];
      assert.equal(url, `https://${name}:7443`, `${name}'s node URL is its own service name`);
      urls.add(url!);
      assert.match(body, new RegExp(`volumes: \\[${name}-data:/data\\]`));
    }
    assert.equal(urls.size, 3);
    assert.match(s.get('postgres')!.join('\n'), /healthcheck:/);
  });

  // Security: secrets stay off command lines and out of the compose file (the repo's standard):
  // every secret the relay reads comes from a Docker secret through its TUNN_…_FILE form.
  it('gives every secret as a Docker secret file, never inline', () => {
    const keys = Object.keys(relaySchema.shape);
    const known = new Set([...keys.map(envName), ...keys.filter(isSecretKey).map((k) => envName(fileKey(k)))]);
    const secretNames = new Set(SECRET_KEYS.map(envName));
    const env = [...text.matchAll(/^\s+(TUNN_\w+): (\S+)/gm)].map((m) => [m[1]!, m[2]!] as const);
    assert.ok(env.length > 0);
    for (const [name, value] of env) {
      assert.ok(known.has(name), `${name} is not a setting of tunn relay`);
      assert.ok(!secretNames.has(name), `${name} is a secret: give it as ${name}_FILE`);
      if (name.endsWith('_FILE')) assert.match(value, /^\/run\/secrets\/[\w-]+$/, `${name} reads a Docker secret`);
    }
    for (const name of ['TUNN_STORE_FILE', 'TUNN_SECRET_KEY_FILE', 'TUNN_CLUSTER_SECRET_FILE']) assert.ok(env.some(([n]) => n === name), `${name} is set`);
    assert.match(text, /POSTGRES_PASSWORD_FILE: \/run\/secrets\/postgres-password/);
    assert.doesNotMatch(text, /POSTGRES_PASSWORD:/);
    assert.doesNotMatch(text, /postgres(ql)?:\/\/[^\s:@/]+:[^\s@]+@/, 'no database URL with a password');
    assert.doesNotMatch(text, /\b[0-9a-f]{32,}\b/i, 'no key material');
    // Every secret a service names is declared from a file (outside the repo's tracked files).
    const declared = new Map<string, string>();
    let cur: string | undefined;
    for (const l of block('secrets')) {
      const m = /^ {2}([\w-]+):\s*$/.exec(l);
      if (m) cur = m[1];
      const f = /^ {4}file: (\S+)$/.exec(l);
      if (f && cur) declared.set(cur, f[1]!);
    }
    const used = new Set([...text.matchAll(/secrets: \[([^\]]+)\]/g)].flatMap((m) => m[1]!.split(',').map((x) => x.trim())));
    assert.deepEqual([...used].sort(), [...declared.keys()].sort());
    for (const f of declared.values()) assert.match(f, /^\.\.\/secrets\//);
    assert.match(readFileSync(join(ROOT, '.gitignore'), 'utf8'), /^\/secrets\/$/m, 'the secrets directory is not committed');
  });
});
