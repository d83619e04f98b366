import { useEffect, useId, useState } from 'react';
import { listGroups, listTunnels, watchTunnels, type TunnelRow } from '../api.ts';
import { bytes, CopyButton, Loading, PageTitle, Problem, When } from '../ui.tsx';
import { useInterval, useLoad } from '../use-load.ts';

// Tunnels: yours and those on domains shared with you, live. Server-sent events from
// /v1/tunnels/events say when something changed; while that stream is not available the list is
// fetched again every few seconds, and the page says which of the two it is doing.

const POLL_MS = 5000;
const SAFETY_POLL_MS = 60_000;

export function TunnelsPage() {
  const tunnels = useLoad(listTunnels);
  // Group members, to expand `group:` entries (the list works without them).
  const groups = useLoad(async () => new Map((await listGroups()).map((g) => [g.name, g.emails])));
  const [live, setLive] = useState<'connecting' | 'live' | 'polling'>('connecting');

  useEffect(() => {
    const changed = () => {
      void tunnels.reload();
      void groups.reload();
    };
    return watchTunnels(changed, (state) => setLive(state === 'live' ? 'live' : 'polling'));
  }, [tunnels.reload, groups.reload]);

  // Without the stream: fetch every few seconds. With it: now and then anyway, as a safety net
  // for a change the stream did not name.
  useInterval(() => {
    void tunnels.reload();
    void groups.reload();
  }, live === 'polling' ? POLL_MS : live === 'live' ? SAFETY_POLL_MS : null);

  const list = tunnels.data;
  return (
    <>
      <PageTitle>Tunnels</PageTitle>
      <p className="muted" role="status">
        {live === 'live' ? 'Live: changes appear as agents come and go.' : live === 'polling' ? `Updated every ${POLL_MS / 1000} s.` : 'Connecting…'}
      </p>
      <Problem error={tunnels.error} what="Could not list your tunnels" />
      {list === undefined ? <Loading loading={tunnels.loading} what="tunnels" /> : null}
      {list && list.length === 0 ? (
        <p className="card">
          No live tunnels. Start one with <code>tunn 8080 -a you@example.com</code>.
        </p>
      ) : null}
      {list && list.length > 0 ? (
        <ul className="cards" aria-label="Live tunnels">
          {list.map((t) => (
            <TunnelCard key={t.host} t={t} groups={groups.data ?? new Map()} />
          ))}
        </ul>
      ) : null}
    </>
  );
}

function TunnelCard(props: { t: TunnelRow; groups: Map<string, string[]> }) {
  const { t } = props;
  return (
    <li className="card tunnel">
      <h2 className="card-title">{t.name || t.host}</h2>
      <p className="url">
        <a href={t.url} target="_blank" rel="noopener noreferrer">
          {t.url}
        </a>{' '}
        <CopyButton text={t.url} label={`the URL of ${t.host}`} />
      </p>
      <dl className="facts">
        <dt>Kind</dt>
        <dd>{t.kind}</dd>
        <dt>Allowed</dt>
        <dd>
          <Allowed entries={t.allow} isPublic={t.public} groups={props.groups} />
        </dd>
        <dt>Agents</dt>
        <dd data-testid="agents">{t.agents}</dd>
        <dt>Requests</dt>
        <dd>{t.requests}</dd>
        {t.bytesIn !== undefined || t.bytesOut !== undefined ? (
          <>
            <dt>Bytes in / out</dt>
            <dd>
              {bytes(t.bytesIn)} / {bytes(t.bytesOut)}
            </dd>
          </>
        ) : null}
        {t.owner ? (
          <>
            <dt>Owner</dt>
            <dd>{t.owner}</dd>
          </>
        ) : null}
        <dt>Since</dt>
        <dd>
          <When iso={t.since} />
        </dd>
      </dl>
    </li>
  );
}

/** Who may reach a tunnel; a group shows its members on hover and on keyboard focus. */
function Allowed(props: { entries: string[]; isPublic?: boolean; groups: Map<string, string[]> }) {
  if (props.isPublic) return <span>everyone (public)</span>;
  if (props.entries.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="inline-list" data-testid="allowed">
      {props.entries.map((e) => {
        const m = /^group:(.+)$/.exec(e);
        const members = m ? props.groups.get(m[1]!) : undefined;
        return <li key={e}>{members ? <GroupTag entry={e} members={members} /> : e}</li>;
      })}
    </ul>
  );
}

function GroupTag(props: { entry: string; members: string[] }) {
  const id = useId();
  return (
    <span className="group">
      <button type="button" className="group-tag" aria-describedby={id}>
        {props.entry}
      </button>
      <span id={id} role="tooltip" className="group-members">
        {props.members.length ? props.members.join(', ') : 'no members'}
      </span>
    </span>
  );
}
