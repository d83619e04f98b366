import { existsSync } from 'node:fs';
import { z } from 'zod';

// The cluster settings of `tunn relay` (issue 14): where the other relays reach this one
// (--node-url) and the credentials of the link between relays: a cluster secret every relay
// shares (--cluster-secret-file, TUNN_CLUSTER_SECRET), or certificate files from the
// operator's own CA. Checked with every other setting, so all problems show at once.

/** The relay joins a cluster when --node-url is given (src/relay/cluster-wiring.ts). */
export const CLUSTER_WIRED = true;

/** https://host:port, nothing else: the address of this relay's inter-relay link. */
function isNodeUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return u.protocol === 'https:' && u.port !== '' && u.username === '' && u.password === '' && (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '' && !/\/./.test(v.replace(/^https:\/\//, ''));
  } catch {
    return false;
  }
}

export const clusterSettings = {
  /** Where the other relays reach this relay's link: https://host:port (the link listens on that port). */
  nodeUrl: z.string().refine(isNodeUrl, 'must be https://host:port, the address the other relays reach this one at, e.g. https://10.0.0.11:7443').optional(),
  /** The secret every relay of the cluster shares; the link's CA is derived from it. */
  clusterSecret: z.string().min(32, 'must be at least 32 characters; generate one with: openssl rand -hex 32').optional(),
  clusterCa: z.string().min(1).optional(),
  clusterCert: z.string().min(1).optional(),
  clusterKey: z.string().min(1).optional(),
};

const FILES = [
  ['clusterCa', '--cluster-ca'],
  ['clusterCert', '--cluster-cert'],
  ['clusterKey', '--cluster-key'],
] as const;

const isPostgres = (v: unknown): boolean => typeof v === 'string' && /^postgres(ql)?:\/\//.test(v);

/** Problems with the cluster settings of a merged relay configuration (empty when there are none). */
export function clusterCrossChecks(merged: Record<string, unknown>): string[] {
  const has = (k: string) => merged[k] !== undefined && merged[k] !== '';
  const secret = has('clusterSecret') || has('clusterSecretFile');
  const files = FILES.filter(([k]) => has(k));
  const any = has('nodeUrl') || secret || files.length > 0;
  if (!any) return [];
  const problems: string[] = [];
  if (has('nodeUrl')) {
    if (!isPostgres(merged.store)) problems.push('--node-url needs --store postgres://… (the relays of a cluster share one PostgreSQL database; pass its URL with --store-file FILE or TUNN_STORE)');
    if (!secret && files.length === 0) problems.push('--node-url needs the credentials of the link between relays: --cluster-secret-file FILE (the same secret on every relay; env TUNN_CLUSTER_SECRET), or --cluster-ca, --cluster-cert and --cluster-key');
  } else {
    const given = secret ? '--cluster-secret-file' : files[0]![1];
    problems.push(`${given} needs --node-url (the https://host:port at which the other relays reach this one)`);
  }
  if (secret && files.length) problems.push('give either --cluster-secret-file or --cluster-ca/--cluster-cert/--cluster-key, not both');
  if (!secret && files.length > 0 && files.length < FILES.length) {
    const missing = FILES.filter(([k]) => !has(k)).map(([, f]) => f);
    problems.push(`${files.map(([, f]) => f).join(' and ')} ${files.length === 1 ? 'needs' : 'need'} ${missing.join(' and ')} (the cluster CA, this relay's certificate from it, and its key)`);
  }
  for (const [k, flag] of files) if (typeof merged[k] === 'string' && !existsSync(merged[k])) problems.push(`cannot read ${flag} ${merged[k]}: no such file`);
  if (!CLUSTER_WIRED) problems.push('running relays as a cluster (--node-url, --cluster-*) is not available in this version yet: the relay does not join a cluster. Remove those settings to run a single relay');
  return problems;
}
