import { useState } from 'react';
import { requireEmail } from '../../../src/auth/emails.ts';
import { EVENT_KINDS } from '../../../src/auth/event-kinds.ts';
import { listEvents, type EventFilter, type EventRow } from '../api.ts';
import { navigate } from '../router.tsx';
import { ActionForm, checkWith, Loading, PageTitle, Problem, TextField, useAction, When } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

// Events: security and certificate events about your tunnels and tokens, newest first, with
// filters (kind, tunnel, email, time; every account's for relay operators) kept in the address
// so a reload or a sign-in keeps them, and paging.

const checkEmail = checkWith((v: string) => requireEmail(v));

function filterFrom(search: string): EventFilter {
  const q = new URLSearchParams(search);
  const f: EventFilter = {};
  for (const k of ['kind', 'tunnel', 'email', 'since', 'all'] as const) {
    const v = q.get(k);
    if (v) f[k] = v;
  }
  return f;
}

export function EventsPage(props: { search: string; admin: boolean }) {
  const filter = filterFrom(props.search);
  const key = JSON.stringify(filter);
  const first = useLoad(() => listEvents(filter), [key]);
  const [more, setMore] = useState<{ key: string; events: EventRow[]; next: string | null }>();
  const loadMore = useAction();
  const extra = more?.key === key ? more : undefined;
  const events = [...(first.data?.events ?? []), ...(extra?.events ?? [])];
  const next = extra ? extra.next : (first.data?.next ?? null);
  return (
    <>
      <PageTitle>Events</PageTitle>
      <Filters key={key} filter={filter} admin={props.admin} />
      <Problem error={first.error} what="Could not list events" />
      {first.data === undefined ? <Loading loading={first.loading} what="events" /> : null}
      {first.data && events.length === 0 ? <p className="card">No events{Object.keys(filter).length ? ' match these filters' : ''}.</p> : null}
      {events.length > 0 ? (
        <ol className="cards events" aria-label="Events, newest first">
          {events.map((e) => (
            <li key={e.id} className="card event">
              <p>
                <span className="badge">{e.kind}</span> <When iso={e.at} />
                {e.count > 1 ? <span className="muted"> ×{e.count}</span> : null}
              </p>
              <p>{e.detail}</p>
              <p className="muted small">
                {[e.tunnel && `tunnel ${e.tunnel}`, e.email && `email ${e.email}`, e.ip && `from ${e.ip}`].filter(Boolean).join(' · ')}
              </p>
            </li>
          ))}
        </ol>
      ) : null}
      <Problem error={loadMore.error} what="Could not load more events" />
      {next ? (
        <button
          type="button"
          disabled={loadMore.pending}
          onClick={() =>
            void loadMore.run(async () => {
              const page = await listEvents(filter, next);
              setMore({ key, events: [...(extra?.events ?? []), ...page.events], next: page.next });
            })
          }
        >
          Older events
        </button>
      ) : null}
    </>
  );
}

function Filters(props: { filter: EventFilter; admin: boolean }) {
  const [kind, setKind] = useState(props.filter.kind ?? '');
  const [tunnel, setTunnel] = useState(props.filter.tunnel ?? '');
  const [email, setEmail] = useState(props.filter.email ?? '');
  const [since, setSince] = useState(props.filter.since ? toLocalInput(props.filter.since) : '');
  const [all, setAll] = useState(props.filter.all === '1');
  const apply = () => {
    const q = new URLSearchParams();
    if (kind) q.set('kind', kind);
    if (tunnel.trim()) q.set('tunnel', tunnel.trim());
    if (email.trim()) q.set('email', email.trim().toLowerCase());
    if (since) q.set('since', new Date(since).toISOString());
    if (all) q.set('all', '1');
    navigate(`/events${q.size ? `?${q}` : ''}`);
  };
  const bad = email.trim() !== '' && checkEmail(email.trim()) !== undefined;
  return (
    <ActionForm label="Filter events" onSubmit={apply} className="card form filters">
      <div className="field">
        <label htmlFor="event-kind">Kind</label>
        <select id="event-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="">any</option>
          {EVENT_KINDS.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </div>
      <TextField label="Tunnel" value={tunnel} onChange={setTunnel} placeholder="grafana.tunn.example.com" />
      <TextField label="Email" value={email} onChange={setEmail} validate={(v) => checkEmail(v.trim())} placeholder="alice@example.com" />
      <TextField label="Since" type="datetime-local" value={since} onChange={setSince} />
      {props.admin ? (
        <div className="field check">
          <input id="event-all" type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
          <label htmlFor="event-all">Every account (relay operator)</label>
        </div>
      ) : null}
      <div className="row">
        <button type="submit" disabled={bad}>
          Filter
        </button>
        <button
          type="button"
          onClick={() => {
            setKind('');
            setTunnel('');
            setEmail('');
            setSince('');
            setAll(false);
            navigate('/events');
          }}
        >
          Clear
        </button>
      </div>
    </ActionForm>
  );
}

/** An ISO time as the value of a datetime-local input (local time, to the minute). */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
