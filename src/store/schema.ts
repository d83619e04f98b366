// The database schema as Kysely sees it. Timestamps are ISO-8601 UTC strings in both
// SQLite and PostgreSQL (they sort as text), booleans are 0/1 integers, lists are JSON text.
// Each concern owns its tables; migrations.ts creates them.

export interface AccountsTable {
  id: string;
  email: string;
  /** Short unique id used in `<acme_id>._acme.<relay domain>` (custom domains). */
  acme_id: string;
  created_at: string;
}

/** Tunnel names: a name belongs to the account that first used it (per domain). */
export interface NamesTable {
  domain: string;
  name: string;
  account_id: string;
  created_at: string;
  last_used_at: string;
}

/** Every token the relay issues (agent, personal access, session, refresh) has a row keyed by its jti. */
export interface TokensTable {
  jti: string;
  account_id: string;
  kind: string;
  label: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** JWT signing keys; the private half sealed with the relay's secret key. */
export interface SigningKeysTable {
  kid: string;
  alg: string;
  private_sealed: string;
  public_jwk: string;
  created_at: string;
  retired_at: string | null;
}

export interface Database {
  accounts: AccountsTable;
  names: NamesTable;
  tokens: TokensTable;
  signing_keys: SigningKeysTable;
}
