import { useState } from 'react';
import { createToken, listTokens, revokeToken, type TokenRow } from '../api.ts';
import { ActionForm, ConfirmButton, CopyButton, Loading, PageTitle, Problem, TextField, useAction, When } from '../ui.tsx';
import { useDraft, useLoad } from '../use-load.ts';

// Tokens: your personal access tokens and agent tokens. A new token is shown once, here, with a
// copy button; it is kept nowhere else (leaving the page forgets it). Revoking one cuts what uses
// it at once (agents included). Relay operators (--admin-email) may list every account's tokens
// (the API's ?all=1, which refuses anyone else); each card names its account, and only your own
// can be revoked here.

export function TokensPage(props: { admin: boolean; email: string }) {
  const [all, setAll] = useState(false);
  const tokens = useLoad(() => listTokens(all), [all]);
  const [created, setCreated] = useState<{ token: string; name: string }>();
  return (
    <>
      <PageTitle>Tokens</PageTitle>
      <p className="muted">
        For scripts and agents: <code>TUNN_TOKEN_FILE=FILE tunn …</code>. Agent tokens for other people come from the relay's operator (<code>tunn relay token create</code>).
      </p>
      <NewToken
        onCreated={async (t) => {
          setCreated(t);
          await tokens.reload();
        }}
      />
      {created ? (
        <section className="card shown-once" aria-labelledby="new-token-title">
          <h2 id="new-token-title">Your new token “{created.name}”</h2>
          <p>Copy it now: it is shown only this once.</p>
          <p className="secret">
            <code data-testid="new-token">{created.token}</code>
          </p>
          <div className="row">
            <CopyButton text={created.token} label="the new token" />
            <button type="button" onClick={() => setCreated(undefined)}>
              Done, hide it
            </button>
          </div>
        </section>
      ) : null}
      {props.admin ? (
        <div className="field check">
          <input id="tokens-all" type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
          <label htmlFor="tokens-all">Every account (relay operator)</label>
        </div>
      ) : null}
      <Problem error={tokens.error} what="Could not list your tokens" />
      {tokens.data === undefined ? <Loading loading={tokens.loading} what="tokens" /> : null}
      {tokens.data && tokens.data.length === 0 ? <p className="card">No tokens.</p> : null}
      {tokens.data && tokens.data.length > 0 ? (
        <ul className="cards" aria-label={all ? "Every account's tokens" : 'Your tokens'}>
          {tokens.data.map((t) => (
            <TokenCard key={t.id} t={t} mine={!t.email || t.email.toLowerCase() === props.email.toLowerCase()} onRevoked={tokens.reload} />
          ))}
        </ul>
      ) : null}
    </>
  );
}

function NewToken(props: { onCreated: (t: { token: string; name: string }) => Promise<void> }) {
  const [name, setName] = useDraft('tokens:new:name');
  const action = useAction();
  return (
    <ActionForm
      label="New personal access token"
      onSubmit={() =>
        void action.run(async () => {
          const t = await createToken(name.trim());
          setName('');
          await props.onCreated(t);
        })
      }
    >
      <h2>New personal access token</h2>
      <TextField label="Name" value={name} onChange={(v) => { setName(v); action.clear(); }} serverError={action.error?.message} hint="What it is for, e.g. ci (at most 100 characters)" validate={(v) => (v.length > 100 ? `"name" is too long (at most 100 characters)` : undefined)} />
      <button type="submit" disabled={action.pending || name.length > 100}>
        Create token
      </button>
    </ActionForm>
  );
}

function TokenCard(props: { t: TokenRow; mine: boolean; onRevoked: () => Promise<void> }) {
  const { t } = props;
  return (
    <li className="card">
      <h2 className="card-title">{t.name}</h2>
      <dl className="facts">
        <dt>Kind</dt>
        <dd>{t.kind === 'pat' ? 'personal access token' : t.kind === 'agent' ? 'agent token' : t.kind}</dd>
        {t.email ? (
          <>
            <dt>Account</dt>
            <dd>{t.email}</dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>
          <When iso={t.createdAt} />
        </dd>
        <dt>Last used</dt>
        <dd>
          <When iso={t.lastUsedAt} never="never" />
        </dd>
        <dt>Expires</dt>
        <dd>
          <When iso={t.expiresAt} never="never" />
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{t.id}</code>
        </dd>
      </dl>
      {props.mine ? (
      <div className="row end">
        <ConfirmButton
          label="Revoke"
          accessibleLabel={`Revoke token ${t.name}`}
          question={
            <>
              Revoke <strong>{t.name}</strong>? Scripts and agents using it are refused from now on, and live agent connections are cut.
            </>
          }
          confirm="Revoke"
          onConfirm={async () => {
            await revokeToken(t.id);
            await props.onRevoked();
          }}
        />
      </div>
      ) : (
        <p className="muted small">
          Another account's: its owner revokes it, or <code>tunn relay token revoke</code> on the relay.
        </p>
      )}
    </li>
  );
}
