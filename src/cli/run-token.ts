import { TokenService } from '../auth/tokens.ts';
import { systemClock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { loadSecretKey, SecretBox } from '../lib/secret-box.ts';
import { accountByEmail, ensureAccount } from '../store/accounts.ts';
import { openStore } from '../store/store.ts';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { relayDefaults } from '../config/config.ts';
import { tokenInfo } from '../api/tokens.ts';
import { printJson } from './output.ts';
import { relayConfigFrom, relayOptionsFrom } from './run-relay.ts';
import { formatTable } from './table.ts';

// `tunn relay token …`: operator commands that work on the relay's data dir directly.

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * The data dir these commands work on: --data-dir, TUNN_DATA_DIR, or with --dev the one `tunn dev`
 * and `tunn relay --dev` use. A dir without the relay's database is refused (unless --store
 * names the database): creating a new database and secret.key there would hand out tokens no
 * relay knows.
 */
export function relayDataDir(flags: { dataDir?: unknown; dev?: unknown; store?: unknown; storeFile?: unknown }, env: NodeJS.ProcessEnv): string {
  const explicit = (flags.dataDir as string | undefined) ?? (env.TUNN_DATA_DIR || undefined);
  const dataDir = explicit ?? relayDefaults(Boolean(flags.dev)).dataDir!;
  if (flags.store || flags.storeFile || env.TUNN_STORE || env.TUNN_STORE_FILE || existsSync(join(dataDir, 'tunn.db'))) return dataDir;
  const dev = relayDefaults(true).dataDir!;
  const hint = !explicit && !flags.dev && existsSync(join(dev, 'tunn.db')) ? ` (there is one in ${dev}: add --dev for the relay \`tunn dev\` runs)` : '';
  throw new TunnError('NOT_FOUND', `${resolve(dataDir)} holds no relay database (tunn.db): pass the data dir your relay runs with (--data-dir DIR), or --dev for \`tunn dev\`'s${hint}`);
}

async function openRelayTokens(flags: Record<string, unknown>) {
  const dataDir = relayDataDir(flags, process.env);
  const o = relayOptionsFrom({ dataDir, store: flags.store, storeFile: flags.storeFile, secretKeyFile: flags.secretKeyFile, dev: true, domain: 'tunn.localhost' }, process.env);
  const c = relayConfigFrom(o);
  const box = new SecretBox(loadSecretKey(c.secretKey, join(c.dataDir, 'secret.key')));
  const store = await openStore(c.storeUrl ?? join(c.dataDir, 'tunn.db'));
  const tokens = new TokenService({ store, box, clock: systemClock, issuer: 'tunn' });
  await tokens.init();
  return { store, tokens };
}

export async function runTokenCreate(flags: { email?: string; name?: string; json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const email = String(flags.email ?? '').trim();
  if (!EMAIL.test(email)) throw new TunnError('INVALID_INPUT', `--email "${email}" is not an email address; pass the email of the account the token is for`);
  const { store, tokens } = await openRelayTokens(flags);
  try {
    const account = await ensureAccount(store, email);
    const t = await tokens.issue({ accountId: account.id, kind: 'agent', label: flags.name ?? 'agent' });
    if (flags.json) printJson({ event: 'token', token: t.token, id: t.jti, email: account.email });
    else process.stdout.write(`${t.token}\n`);
    if (!flags.json) process.stderr.write(`tunn: agent token for ${account.email} (id ${t.jti}); save it to a file (mode 0600) and pass --token-file FILE, or set TUNN_TOKEN\n`);
  } finally {
    await store.close();
  }
}

export async function runTokenList(flags: { email?: string; json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const { store } = await openRelayTokens(flags);
  try {
    let q = store.db.selectFrom('tokens').innerJoin('accounts', 'accounts.id', 'tokens.account_id').select(['tokens.jti', 'tokens.kind', 'tokens.label', 'tokens.created_at', 'tokens.expires_at', 'tokens.last_used_at', 'tokens.revoked_at', 'accounts.email']).where('tokens.kind', 'in', ['agent', 'pat']);
    if (flags.email) {
      const a = await accountByEmail(store, flags.email);
      q = q.where('accounts.id', '=', a?.id ?? '');
    }
    const rows = await q.orderBy('tokens.created_at').execute();
    // --json: the names of GET /v1/tokens (`tunn token list --json`), plus revokedAt (this list keeps revoked tokens).
    if (flags.json) printJson({ event: 'tokens', tokens: rows.map((r) => ({ ...tokenInfo(r), revokedAt: r.revoked_at })) });
    else if (rows.length === 0) process.stdout.write(`no tokens${flags.email ? ` for ${flags.email}` : ''} (create one with \`tunn relay token create --email EMAIL\`)\n`);
    else process.stdout.write(formatTable(['ID', 'KIND', 'EMAIL', 'NAME', 'CREATED', 'LAST USED', 'STATUS'], rows.map((r) => [r.jti, r.kind, r.email, r.label, r.created_at, r.last_used_at ?? '-', r.revoked_at ? `revoked ${r.revoked_at}` : 'active'])));
  } finally {
    await store.close();
  }
}

export async function runTokenRevoke(id: string, flags: { json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const { store, tokens } = await openRelayTokens(flags);
  try {
    const ok = await tokens.revoke(id);
    if (!ok) throw new TunnError('NOT_FOUND', `no active token with id ${id}; list them with \`tunn relay token list\``);
    if (flags.json) printJson({ event: 'revoked', id });
    else process.stderr.write(`tunn: token ${id} revoked; agents using it are refused from their next connection\n`);
  } finally {
    await store.close();
  }
}

// `tunn relay keys …`: the token signing keys. Rotating adds a key that signs from then on;
// tokens signed with older keys keep working until those keys are retired.

export async function runKeysList(flags: { json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const { store, tokens } = await openRelayTokens(flags);
  try {
    const rows = await store.db.selectFrom('signing_keys').select(['kid', 'alg', 'created_at', 'retired_at']).orderBy('created_at').execute();
    const signing = tokens.signingKid;
    if (flags.json) printJson({ event: 'keys', keys: rows.map((r) => ({ kid: r.kid, alg: r.alg, createdAt: r.created_at, retiredAt: r.retired_at, signing: r.kid === signing })) });
    else process.stdout.write(formatTable(['KID', 'ALG', 'CREATED', 'STATUS'], rows.map((r) => [r.kid, r.alg, r.created_at, r.kid === signing ? 'signing (new tokens)' : r.retired_at ? `retired ${r.retired_at}` : 'verifies older tokens'])));
  } finally {
    await store.close();
  }
}

export async function runKeysRotate(flags: { json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const { store, tokens } = await openRelayTokens(flags);
  try {
    const kid = await tokens.rotateKeys();
    if (flags.json) printJson({ event: 'rotated', kid });
    else process.stderr.write(`tunn: new signing key ${kid}; running relays sign with it within a minute (a cluster on PostgreSQL: at once), and tokens signed before stay valid until you retire the old key\n`);
  } finally {
    await store.close();
  }
}

export async function runKeysRetire(kid: string, flags: { json?: boolean; dataDir?: string; store?: string }): Promise<void> {
  const { store, tokens } = await openRelayTokens(flags);
  try {
    const live = await store.db.selectFrom('signing_keys').select(['kid']).where('retired_at', 'is', null).execute();
    if (!live.some((k) => k.kid === kid)) throw new TunnError('NOT_FOUND', `no active signing key ${kid}; list them with \`tunn relay keys list\``);
    await tokens.retireKey(kid); // refuses the key that signs
    if (flags.json) printJson({ event: 'retired', kid });
    else process.stderr.write(`tunn: retired ${kid}; tokens signed with it are refused, and running relays cut the agents and connections using them (within seconds)\n`);
  } finally {
    await store.close();
  }
}
