import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { secretOption } from './secret-flags.ts';
import type { Command } from 'commander';
import type { DeviceStart } from '../auth/device.ts';
import { isAgentReported } from '../auth/event-kinds.ts';
import { TunnError } from '../lib/errors.ts';
import { RelayApi, removeCredentials, resolveApiTarget, saveCredentials } from './api-client.ts';
import { printJson } from './output.ts';
import { pathParams } from '../api/client.ts';

// tunn login / logout / whoami / token / group / events: thin commands over the relay API.

export interface CommonFlags {
  relay?: string;
  token?: string;
  tokenFile?: string;
  relayCa?: string;
  json?: boolean;
}

/** The flags of every command that calls the relay's API (one set, with the secrets policy's `--token-file`). */
export function apiFlags(cmd: Command): Command {
  cmd.option('--relay <url>', 'relay URL (default: the one you signed in to; env TUNN_RELAY)');
  secretOption(cmd, 'token', 'token', 'the access token to use instead of the saved credentials');
  return cmd.option('--relay-ca <file>', 'extra CA to trust for the relay (env TUNN_RELAY_CA)').option('--json', 'print JSON');
}

export function client(flags: CommonFlags): RelayApi {
  return new RelayApi(resolveApiTarget(flags));
}

export function out(flags: CommonFlags, obj: Record<string, unknown>, human: () => string): void {
  if (flags.json) printJson(obj);
  else process.stdout.write(human());
}


export async function runLogin(flags: CommonFlags & { browser?: boolean }): Promise<void> {
  const target = resolveApiTarget({ ...flags, token: undefined, tokenFile: undefined });
  const api = new RelayApi({ ...target, token: undefined });
  const start: DeviceStart = await api.call((c) => c.v1.auth.device.$post({ json: { client_name: `tunn CLI on ${hostname()}` } }), { auth: false });
  // The URL carries no code: the relay only takes one typed in (device-code phishing, RFC 8628 §5.4).
  if (flags.json) printJson({ event: 'login', verificationUri: start.verification_uri, userCode: start.user_code, expiresIn: start.expires_in });
  else process.stderr.write(`tunn: first copy your one-time code: ${start.user_code}\ntunn: then open ${start.verification_uri} and type it in\ntunn: waiting for you to approve…\n`);
  if (flags.browser !== false && !flags.json) openBrowser(start.verification_uri);
  let interval = Math.max(1, start.interval) * 1000;
  const deadline = Date.now() + start.expires_in * 1000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, interval));
    const r: { access_token?: string; email?: string; error?: string; error_description?: string; interval?: number } = await api.callRaw((c) =>
      c.v1.auth.device.token.$post({ json: { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: start.device_code } }),
    );
    if (r.access_token) {
      const file = saveCredentials(target.relay, { token: r.access_token, email: r.email, relayCa: target.relayCa });
      if (flags.json) printJson({ event: 'ready', email: r.email, relay: target.relay, credentials: file });
      else process.stderr.write(`tunn: signed in to ${target.relay} as ${r.email}; credentials saved in ${file}\n`);
      return;
    }
    if (r.error === 'authorization_pending') continue;
    if (r.error === 'slow_down') {
      interval = (r.interval ?? interval / 1000 + 5) * 1000;
      continue;
    }
    throw new TunnError('LOGIN_FAILED', r.error_description ?? `sign-in failed: ${r.error ?? 'unknown error'}`);
  }
  throw new TunnError('LOGIN_FAILED', 'the sign-in code expired before it was approved; run `tunn login` again');
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    /* no browser here: the URL is printed */
  }
}

export async function runLogout(flags: CommonFlags): Promise<void> {
  const target = resolveApiTarget(flags);
  const api = new RelayApi(target);
  if (target.token) await api.call((c) => c.v1.auth.token.revoke.$post({ json: {} })).catch((err: unknown) => {
    // A token the relay already refuses is as good as revoked.
    if (!(err instanceof TunnError) || !['AUTH_INVALID_TOKEN', 'AUTH_TOKEN_REVOKED'].includes(err.code)) throw err;
  });
  removeCredentials(target.relay);
  out(flags, { event: 'logout', relay: target.relay }, () => `signed out of ${target.relay}\n`);
}

export async function runWhoami(flags: CommonFlags): Promise<void> {
  const me = await client(flags).call((c) => c.v1.me.$get());
  out(flags, { event: 'whoami', ...me }, () => {
    if (!me.idpGroups) return `${me.email}\n`;
    const problems = (me.idpProblems ?? []).map((p) => `  (${p})\n`).join('');
    return `${me.email}\nIdP groups: ${me.idpGroups.length ? me.idpGroups.join(', ') : '(none)'}\n${problems}`;
  });
}

export function registerIdentityCommands(program: Command): void {
  apiFlags(program.command('login').description('sign in to a relay (device code, like `gh auth login`)'))
    .option('--no-browser', 'do not try to open a browser')
    .action((o) => runLogin(o));
  apiFlags(program.command('logout').description('revoke this machine\'s credentials and forget them')).action((o) => runLogout(o));
  apiFlags(program.command('whoami').description('print the signed-in email, and the IdP groups the relay knows for you')).action((o) => runWhoami(o));

  const token = program.command('token').description('personal access tokens (for scripts: Authorization: Bearer <token>)');
  apiFlags(token.command('list').description('list your tokens, with their last use').option('--all', "every account's tokens (relay admins, --admin-email)")).action(async (o: CommonFlags & { all?: boolean }) => {
    const r = await client(o).call((c) => c.v1.tokens.$get({ query: o.all ? { all: '1' } : {} }));
    out(o, { event: 'tokens', ...r }, () =>
      r.tokens.map((t) => `${t.id}  ${t.kind.padEnd(5)}  ${t.name.padEnd(32)}  created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}${o.all ? `  ${t.email}` : ''}${t.id === r.current ? '  (this machine)' : ''}\n`).join('') || 'no tokens\n',
    );
  });
  apiFlags(token.command('create').description('create a personal access token').option('--name <name>', 'a label to recognise it by')).action(async (o: CommonFlags & { name?: string }) => {
    const r = await client(o).call((c) => c.v1.tokens.$post({ json: { name: o.name } }));
    out(o, { event: 'token', ...r }, () => `${r.token}\n`);
  });
  apiFlags(token.command('revoke').description('revoke a token by id').argument('<id>')).action(async (id: string, o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.tokens[':id'].$delete({ param: pathParams({ id }) }));
    out(o, { event: 'revoked', id: r.id }, () => `revoked ${r.id}\n`);
  });

  type Group = { name: string; emails: string[]; updatedAt: string };
  const showGroup = (g: Group): string => `${g.name}: ${g.emails.length ? g.emails.join(', ') : '(empty)'}\n`;
  const group = program.command('group').description('groups: saved email lists to use as -a group:<name>');
  apiFlags(group.command('create').description('create a group').argument('<name>').argument('[emails...]')).action(async (name: string, emails: string[], o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.groups.$post({ json: { name, emails } }));
    out(o, { event: 'group', group: r.group }, () => showGroup(r.group));
  });
  apiFlags(group.command('list').description('list your groups')).action(async (o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.groups.$get());
    out(o, { event: 'groups', groups: r.groups }, () => r.groups.map(showGroup).join('') || 'no groups\n');
  });
  apiFlags(group.command('show').description('show a group').argument('<name>')).action(async (name: string, o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.groups[':name'].$get({ param: pathParams({ name }) }));
    out(o, { event: 'group', group: r.group }, () => showGroup(r.group));
  });
  apiFlags(group.command('add').description('add emails to a group').argument('<name>').argument('<emails...>')).action(async (name: string, emails: string[], o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.groups[':name'].members.$post({ param: pathParams({ name }), json: { emails } }));
    out(o, { event: 'group', group: r.group }, () => showGroup(r.group));
  });
  apiFlags(group.command('rm').alias('remove').description('remove an email from a group').argument('<name>').argument('<email>')).action(async (name: string, email: string, o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.groups[':name'].members[':email'].$delete({ param: pathParams({ name, email }) }));
    out(o, { event: 'group', group: r.group }, () => showGroup(r.group));
  });
  apiFlags(group.command('delete').description('delete a group').argument('<name>')).action(async (name: string, o: CommonFlags) => {
    await client(o).call((c) => c.v1.groups[':name'].$delete({ param: pathParams({ name }) }));
    out(o, { event: 'deleted', group: name }, () => `deleted group ${name}\n`);
  });

  apiFlags(
    program
      .command('events')
      .description('security events: failed logins, revoked-token use, denied visitors, rate-limit bursts')
      .option('--kind <kind>', 'only this kind')
      .option('--tunnel <host>', 'only this tunnel')
      .option('--email <email>', 'only events about this email')
      .option('--since <time>', 'only events at or after this ISO time')
      .option('--until <time>', 'only events before this ISO time')
      .option('--limit <n>', 'at most this many', '50')
      .option('--cursor <cursor>', 'the page after the one that printed this cursor'),
  ).action(async (o: CommonFlags & { kind?: string; tunnel?: string; email?: string; since?: string; until?: string; limit?: string; cursor?: string }) => {
    const r = await client(o).call((c) => c.v1.events.$get({ query: { kind: o.kind, tunnel: o.tunnel, email: o.email, since: o.since, until: o.until, limit: o.limit, cursor: o.cursor } }));
    out(o, { event: 'events', events: r.events, next: r.next }, () =>
      // An agent-reported event's address and email are the agent's word: marked "(agent-said)".
      (r.events.map((e) => {
        const said = (v: string | null | undefined) => (v ? `${v}${isAgentReported(e.detail) ? ' (agent-said)' : ''}` : '-');
        return `${e.at}  ${e.kind.padEnd(20)}  ${said(e.ip).padEnd(15)}  ${said(e.email).padEnd(24)}  ${(e.tunnel ?? '-').padEnd(24)}  ${e.detail}${e.count > 1 ? ` (×${e.count})` : ''}\n`;
      }).join('') || 'no events\n') +
      (r.next ? `(more: tunn events --cursor ${r.next} with the same filters)\n` : ''),
    );
  });
}
