import { useState } from 'react';
import { signOut, type SessionInfo } from '../api.ts';
import { Link } from '../router.tsx';
import { PageTitle, Problem, useAction } from '../ui.tsx';

// Me: who you are signed in as, which relay this is, and signing out. Sign-out goes through the
// API like everything else in the console (DELETE /v1/session with the CSRF header): it signs this
// browser out of the relay and of every tunnel it was handed to, as the relay's own /logout form
// does. The console then says so; its next call to the API finds no session and sends you to
// sign in.

export function MePage(props: { session: SessionInfo }) {
  const s = props.session;
  const action = useAction();
  const [signedOut, setSignedOut] = useState(false);
  if (signedOut) {
    return (
      <>
        <PageTitle>Signed out</PageTitle>
        <section className="card" role="status">
          <p>You are signed out of tunn ({s.email}).</p>
          <p>
            <a href="/login">
              Sign in again
            </a>{' '}
            <Link to="/">Back to the console</Link>
          </p>
        </section>
      </>
    );
  }
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
          <dd>{s.admin ? 'relay operator (--admin-email): sees every account’s tokens and events' : 'user'}</dd>
        </dl>
        <p className="muted small">
          The CLI signs in to the same relay with <code>tunn login --relay {s.relay}</code>.
        </p>
        <Problem error={action.error} what="Could not sign out" />
        <button type="button" disabled={action.pending} onClick={() => void action.run(async () => { await signOut(); setSignedOut(true); })}>
          Sign out
        </button>
      </section>
    </>
  );
}
