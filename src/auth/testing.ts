import { randomBytes } from 'node:crypto';
import { ManualClock } from '../lib/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore } from '../store/store.ts';
import { createIdentity, type Identity, type IdentityOptions } from './identity.ts';
import type { GateRequest } from './gate.ts';
import { TokenService } from './tokens.ts';

// Test fixture (not used by the relay): a real in-memory store, a real token service and a
// manual clock, wired as the relay wires them.

export const RELAY_URL = 'http://tunn.localhost:8080';

export async function identityFixture(over: Partial<IdentityOptions> = {}): Promise<Identity & { manualClock: ManualClock; close(): Promise<void> }> {
  const store = await openStore(':memory:');
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
  const tokens = new TokenService({ store, box: new SecretBox(randomBytes(32)), clock, issuer: RELAY_URL });
  await tokens.init();
  const id = createIdentity({ store, tokens, clock, relayUrl: RELAY_URL, isServedHost: (h) => h.endsWith('.tunn.localhost') || h === 'custom.example.test', ...over });
  const closeIdentity = id.close;
  return Object.assign(id, {
    manualClock: clock,
    close: async () => {
      await closeIdentity();
      await store.close();
    },
  });
}

export async function account(id: Identity, email: string): Promise<{ id: string; email: string }> {
  const a = await ensureAccount(id.store, email);
  return { id: a.id, email: a.email };
}

export function gateRequest(over: Partial<GateRequest> & { accept?: string; cookie?: string; authorization?: string } = {}): GateRequest {
  const headers: [string, string][] = [['host', over.host ?? 'app.tunn.localhost:8080']];
  if (over.accept !== undefined) headers.push(['accept', over.accept]);
  if (over.cookie !== undefined) headers.push(['cookie', over.cookie]);
  if (over.authorization !== undefined) headers.push(['authorization', over.authorization]);
  return { method: 'GET', path: '/', host: 'app.tunn.localhost:8080', secure: false, clientIp: '127.0.0.1', upgrade: false, ...over, headers: [...headers, ...(over.headers ?? [])] };
}

/** The session's form token in a page's form (the CSRF defence of signed-in forms). */
export function formTokenIn(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`the page has no form token:\n${html}`);
  return m[1]!;
}
