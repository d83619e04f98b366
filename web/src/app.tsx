import { useEffect, useRef } from 'react';
import { loadSession, signInUrl } from './api.ts';
import { CertificatesPage } from './pages/certificates.tsx';
import { DomainsPage } from './pages/domains.tsx';
import { EventsPage } from './pages/events.tsx';
import { GroupsPage } from './pages/groups.tsx';
import { MePage } from './pages/me.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { TunnelsPage } from './pages/tunnels.tsx';
import { Link, PAGES, useLocation } from './router.tsx';
import { Loading, PageTitle, Problem } from './ui.tsx';
import { useLoad } from './use-load.ts';

// The console's frame: who is signed in (GET /v1/session; a 401 goes to sign in and back), the
// navigation, and the page for the path. Focus moves to the page's title on navigation so a
// screen reader or keyboard user starts at the top of the new page.

export function App() {
  const session = useLoad(loadSession);
  const { path, search } = useLocation();
  const page = PAGES.find((p) => p.path === path);
  const first = useRef(true);

  useEffect(() => {
    document.title = `${page?.title ?? 'Not found'} · tunn`;
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById('page-title')?.focus();
  }, [path, page]);

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <p className="brand">
          <Link to="/">tunn</Link>
        </p>
        <nav aria-label="Console">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <Link to={p.path} current={p.path === path}>
                  {p.title}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        {session.data ? <p className="who muted small">{session.data.email}</p> : null}
      </header>
      <main id="main">
        {session.error ? (
          <>
            <PageTitle>{session.error.status === 401 ? 'Signing you in…' : 'The console cannot start'}</PageTitle>
            <Problem error={session.error} />
            <p>
              <a href={signInUrl()}>Sign in to tunn</a>
            </p>
          </>
        ) : !session.data ? (
          <Loading loading what="your session" />
        ) : path === '/' ? (
          <TunnelsPage />
        ) : path === '/groups' ? (
          <GroupsPage />
        ) : path === '/domains' ? (
          <DomainsPage />
        ) : path === '/certificates' ? (
          <CertificatesPage />
        ) : path === '/tokens' ? (
          <TokensPage admin={session.data.admin} email={session.data.email} />
        ) : path === '/events' ? (
          <EventsPage search={search} admin={session.data.admin} />
        ) : path === '/me' ? (
          <MePage session={session.data} />
        ) : (
          <>
            <PageTitle>Not found</PageTitle>
            <p>
              There is no page {path} in the console. <Link to="/">Your tunnels</Link>
            </p>
          </>
        )}
      </main>
    </>
  );
}
