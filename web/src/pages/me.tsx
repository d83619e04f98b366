import type { SessionInfo } from '../api.ts';
import { PageTitle } from '../ui.tsx';

// Me: who you are signed in as, which relay this is, and signing out (the relay's own sign-out
// form post, with the session's form token: it signs this browser out of the relay and of every
// tunnel it was handed to).

export function MePage(props: { session: SessionInfo }) {
  const s = props.session;
  return (
    <>
      <PageTitle>Me</PageTitle>
      <section className="card">
        <dl className="facts">
          <dt>Signed in as</dt>
          <dd data-testid="me-email">{s.email}</dd>
          <dt>Relay</dt>
          <dd>
            <code>{s.relay}</code>
          </dd>
          <dt>Role</dt>
          <dd>{s.admin ? 'relay operator (--admin-email): sees every account’s events' : 'user'}</dd>
        </dl>
        <p className="muted small">
          The CLI signs in to the same relay with <code>tunn login --relay {s.relay}</code>.
        </p>
        <form method="post" action="/logout">
          {s.csrf ? <input type="hidden" name="csrf" value={s.csrf} /> : null}
          <button type="submit">Sign out</button>
        </form>
      </section>
    </>
  );
}
