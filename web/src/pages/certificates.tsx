import { listCertificates, type CertificateRow } from '../api.ts';
import { Loading, PageTitle, Problem, When } from '../ui.tsx';
import { useInterval, useLoad } from '../use-load.ts';

// Certificates: every name the relay or your agents hold a certificate for, with its lifecycle
// state (seed 001: pending_issue, pending_route, issued, expiring, tls_error,
// passthrough_unverified), issuer, expiry, last error, next retry and where TLS terminates.

const STATE_TEXT: Record<string, string> = {
  pending_issue: 'being issued',
  pending_route: 'waiting for DNS to point here',
  issued: 'issued',
  expiring: 'expiring soon',
  tls_error: 'failing',
  passthrough_unverified: 'passthrough (not checked by the relay)',
};

/** How often the page asks again by itself (states change as the CA answers; there is no stream of them). */
const REFRESH_MS = 15_000;

export function CertificatesPage() {
  const certs = useLoad(listCertificates);
  useInterval(() => void certs.reload(), REFRESH_MS);
  return (
    <>
      <PageTitle>Certificates</PageTitle>
      <div className="row">
        <button type="button" onClick={() => void certs.reload()}>
          Refresh
        </button>
        <span className="muted small">Checked again every {REFRESH_MS / 1000} s while this page is open.</span>
      </div>
      <Problem error={certs.error} what="Could not list certificates" />
      {certs.data === undefined ? <Loading loading={certs.loading} what="certificates" /> : null}
      {certs.data && certs.data.length === 0 ? <p className="card">No certificates yet.</p> : null}
      {certs.data && certs.data.length > 0 ? (
        <ul className="cards" aria-label="Certificates">
          {certs.data.map((c) => (
            <CertificateCard key={c.name} c={c} />
          ))}
        </ul>
      ) : null}
    </>
  );
}

function CertificateCard(props: { c: CertificateRow }) {
  const { c } = props;
  const bad = c.state === 'tls_error' || c.state === 'expiring';
  return (
    <li className="card">
      <h2 className="card-title">{c.name}</h2>
      <p>
        <span className={`badge ${bad ? 'warn' : c.state === 'issued' ? 'ok' : ''}`}>{c.state}</span> <span className="muted">{STATE_TEXT[c.state] ?? ''}</span>
      </p>
      <dl className="facts">
        <dt>Issuer</dt>
        <dd>{c.issuer || '—'}</dd>
        <dt>Valid until</dt>
        <dd>
          <When iso={c.notAfter} />
        </dd>
        <dt>TLS ends at</dt>
        <dd>
          {c.terminatedAt ?? 'relay'}
          {c.pin ? (
            <>
              {' '}
              (pin <code>{c.pin}</code>)
            </>
          ) : null}
        </dd>
        {c.lastError ? (
          <>
            <dt>Last error</dt>
            <dd>{c.lastError}</dd>
          </>
        ) : null}
        {c.nextRetryAt ? (
          <>
            <dt>Next retry</dt>
            <dd>
              <When iso={c.nextRetryAt} />
            </dd>
          </>
        ) : null}
      </dl>
    </li>
  );
}
