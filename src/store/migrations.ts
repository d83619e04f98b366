import { PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';

// Migrations in code, applied in key order. Add new ones at the end; never edit a landed one.
// Column types stay within what SQLite and PostgreSQL both accept.

export const migrations: Record<string, Migration> = {
  '0001_foundation': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('acme_id', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('names')
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('names_pk', ['domain', 'name'])
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('jti', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema.createIndex('tokens_account').on('tokens').columns(['account_id', 'kind']).execute();
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('alg', 'text', (c) => c.notNull())
        .addColumn('private_sealed', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('retired_at', 'text')
        .execute();
    },
  },
  '0002_identity': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('emails', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('groups_account_name', ['account_id', 'name'])
        .execute();
      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('parent_id', 'text')
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('ip', 'text', (c) => c.notNull())
        .addColumn('user_agent', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_parent').on('sessions').column('parent_id').execute();
      await db.schema.createIndex('sessions_account').on('sessions').column('account_id').execute();
      await db.schema
        .createTable('device_codes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_code', 'text', (c) => c.notNull().unique())
        .addColumn('client_name', 'text', (c) => c.notNull())
        .addColumn('ip', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text')
        .addColumn('email', 'text')
        .addColumn('interval_s', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('last_poll_at', 'text')
        .execute();
      await db.schema
        .createTable('login_codes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text')
        .addColumn('email', 'text')
        .addColumn('session_id', 'text')
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
      await db.schema
        .createTable('security_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('ip', 'text')
        .addColumn('email', 'text')
        .addColumn('tunnel', 'text')
        .addColumn('account_id', 'text')
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('security_events_at').on('security_events').columns(['account_id', 'at']).execute();
    },
  },
  '0003_certs': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('domains')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('domain', 'text', (c) => c.notNull().unique())
        .addColumn('acme_identifier', 'text', (c) => c.notNull())
        .addColumn('shares', 'text', (c) => c.notNull())
        .addColumn('verification_token', 'text', (c) => c.notNull())
        .addColumn('verified_at', 'text')
        .addColumn('tls_mode', 'text', (c) => c.notNull())
        .addColumn('tls_status', 'text', (c) => c.notNull())
        .addColumn('tls_not_after', 'text')
        .addColumn('tls_last_error', 'text')
        .addColumn('tls_last_checked_at', 'text')
        .addColumn('certificate_ref', 'text')
        .addColumn('cert_failure_policy', 'text', (c) => c.notNull())
        .addColumn('cert_failure_count', 'integer', (c) => c.notNull())
        .addColumn('cert_next_retry_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('domains_account').on('domains').column('account_id').execute();
      await db.schema
        .createTable('certificates')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('names', 'text', (c) => c.notNull())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('chain_pem', 'text', (c) => c.notNull())
        .addColumn('key_sealed', 'text', (c) => c.notNull())
        .addColumn('not_before', 'text', (c) => c.notNull())
        .addColumn('not_after', 'text', (c) => c.notNull())
        .addColumn('ari_window_start', 'text')
        .addColumn('ari_window_end', 'text')
        .addColumn('ari_checked_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('cert_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('cert_events_domain').on('cert_events').columns(['domain', 'at']).execute();
      await db.schema
        .createTable('acme_accounts')
        .addColumn('directory_url', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text')
        .addColumn('key_sealed', 'text', (c) => c.notNull())
        .addColumn('account_url', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0004_idp_groups_and_grants': {
    async up(db: Kysely<any>) {
      // IdP groups a sign-in brought (OIDC claim), per relay session family (the root session id).
      await db.schema
        .createTable('idp_session_groups')
        .addColumn('session_id', 'text', (c) => c.primaryKey())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('refreshed_at', 'text', (c) => c.notNull())
        // The sign-in's refresh and access tokens (JSON, sealed with the relay's key), to confirm groups again.
        .addColumn('secrets_sealed', 'text')
        .execute();
      // Access that expires: `--for` (ref = the agent's registration) and `tunn grant add` (ref '').
      await db.schema
        .createTable('grants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('ref', 'text', (c) => c.notNull())
        .addColumn('entry', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('grants_host_ref_entry', ['host', 'ref', 'entry'])
        .execute();
    },
  },
  '0005_cert_event_order': {
    async up(db: Kysely<any>) {
      // Cert-event replay protection that outlives a restart and holds across a cluster.
      await db.schema.alterTable('domains').addColumn('cert_event_at', 'bigint').execute();
    },
  },
  '0006_public_ports': {
    async up(db: Kysely<any>) {
      // Public TCP/UDP ports of tcp/udp tunnels (src/relay/public-ports.ts): a name keeps its port.
      await db.schema
        .createTable('public_ports')
        .addColumn('protocol', 'text', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('public_ports_pk', ['protocol', 'port'])
        .addUniqueConstraint('public_ports_name', ['protocol', 'domain', 'name'])
        .execute();
      await db.schema.createIndex('public_ports_account').on('public_ports').column('account_id').execute();
    },
  },
  // Issue 14 (a relay cluster).
  '0007_cluster_nodes_leases': {
    async up(db: Kysely<any>) {
      // One row per running relay process (src/cluster/nodes.ts); alive = seen within a lease TTL.
      await db.schema
        .createTable('cluster_nodes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'text', (c) => c.notNull())
        .addColumn('agents', 'integer', (c) => c.notNull())
        .addColumn('tunnels', 'integer', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .execute();
      // Where a tunnel is served: a row per (host, node, agent session), renewed by the holder (src/cluster/leases.ts).
      await db.schema
        .createTable('tunnel_leases')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('tunnel_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('port', 'integer')
        .addColumn('since', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tunnel_leases_pk', ['host', 'node_id', 'session_id'])
        .execute();
      await db.schema.createIndex('tunnel_leases_node').on('tunnel_leases').column('node_id').execute();
      await db.schema.createIndex('tunnel_leases_port').on('tunnel_leases').column('port').execute();
      // A value sealed with the sealing key the database was first used with (src/cluster/sealing.ts).
      await db.schema
        .createTable('seal_canary')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('sealed', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0008_acme_txt': {
    async up(db: Kysely<any>) {
      // ACME DNS-01 TXT values in the relay's zone, shared so every relay's DNS server answers them (src/dns/shared-txt.ts).
      await db.schema
        .createTable('acme_txt')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('acme_txt_pk', ['name', 'value'])
        .execute();
    },
  },
  '0009_acme_challenges': {
    async up(db: Kysely<any>) {
      // ACME HTTP-01 and TLS-ALPN-01 challenges a relay of a cluster presents, so every relay answers the CA
      // (src/acme/shared-challenges.ts). Key authorizations only (not secret); rows expire (a crashed relay's are swept).
      await db.schema
        .createTable('acme_challenges')
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token', 'text', (c) => c.notNull())
        .addColumn('key_authorization', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('acme_challenges_pk', ['type', 'name', 'token'])
        .execute();
    },
  },
  '0010_identity_notify': {
    async up(db: Kysely<any>) {
      // PostgreSQL only (a cluster): every change that decides who may do what is announced on
      // channel tunn_identity (payload: the table), whoever makes it (a relay, the CLI, psql), so
      // every relay drops its caches and re-checks live connections at once (src/relay/identity-changes.ts).
      // Only the columns that matter: a token's last use or a domain's certificate status is no news.
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
      await sql`create or replace function tunn_notify_identity() returns trigger language plpgsql as $$
        begin perform pg_notify('tunn_identity', TG_TABLE_NAME); return null; end $$`.execute(db);
      const on = async (name: string, table: string, when: string): Promise<void> => {
        await sql.raw(`create trigger ${name} after ${when} on ${table} for each row execute function tunn_notify_identity()`).execute(db);
      };
      for (const table of ['tokens', 'sessions']) {
        await on(`${table}_revoked_notify`, table, 'update of revoked_at');
        await on(`${table}_deleted_notify`, table, 'delete');
      }
      for (const table of ['signing_keys', 'groups', 'grants']) await on(`${table}_notify`, table, 'insert or update or delete');
      await on('accounts_deleted_notify', 'accounts', 'delete');
      await on('domains_access_notify', 'domains', 'update of shares, verified_at, account_id');
      await on('domains_deleted_notify', 'domains', 'delete');
    },
  },
};
