import { useState } from 'react';
import { addDomain, deleteDomain, listDomains, shareDomain, unshareDomain, validateDomain, validateShare, verifyDomain, type DnsRecord, type DomainRow, type Verification } from '../api.ts';
import { ActionForm, ConfirmButton, CopyButton, Loading, PageTitle, Problem, splitList, TextField, useAction, When } from '../ui.tsx';
import { blocksSubmit, useDraft, useInterval, useLoad, useServerCheck } from '../use-load.ts';

// Domains: add one → the DNS records to create (with copy buttons) and a verification status
// that checks itself again every few seconds while it is pending (what is missing, what was
// found); share and unshare; delete with confirmation. Both forms ask the API as you type
// (POST /v1/domains/validate) and show its refusal word for word before anything is sent. A
// domain shared with you is read-only here, and the API refuses changes to it whatever the page
// shows.

const VERIFY_EVERY_MS = 10_000;

export function DomainsPage() {
  const domains = useLoad(listDomains);
  return (
    <>
      <PageTitle>Domains</PageTitle>
      <p className="muted">Serve tunnels under a domain you own: add it, create the two DNS records shown, and it verifies by itself.</p>
      <AddDomain onAdded={domains.reload} />
      <Problem error={domains.error} what="Could not list your domains" />
      {domains.data === undefined ? <Loading loading={domains.loading} what="domains" /> : null}
      {domains.data && domains.data.length === 0 ? <p className="card">No custom domains yet.</p> : null}
      {domains.data && domains.data.length > 0 ? (
        <ul className="cards" aria-label="Your domains">
          {domains.data.map((d) => (
            <DomainCard key={d.domain} d={d} onChange={domains.reload} />
          ))}
        </ul>
      ) : null}
    </>
  );
}

function AddDomain(props: { onAdded: () => Promise<void> }) {
  const [name, setName] = useDraft('domains:new');
  const action = useAction();
  const problem = useServerCheck(name.trim(), validateDomain);
  return (
    <ActionForm
      label="Add a domain"
      onSubmit={() =>
        void action.run(async () => {
          await addDomain(name.trim());
          setName('');
          await props.onAdded();
        })
      }
    >
      <h2>Add a domain</h2>
      <TextField label="Domain" value={name} onChange={(v) => { setName(v); action.clear(); }} serverError={action.error?.message ?? problem?.message} hint="For example tunnels.example.com (tunnels are then NAME.tunnels.example.com)" required />
      <button type="submit" disabled={action.pending || !name.trim() || blocksSubmit(problem)}>
        Add domain
      </button>
    </ActionForm>
  );
}

function DomainCard(props: { d: DomainRow; onChange: () => Promise<void> }) {
  const { d } = props;
  const owner = d.role === 'owner';
  const [check, setCheck] = useState<Verification>();
  const verify = useAction();
  const pending = d.status !== 'verified';
  const runVerify = () =>
    void verify.run(async () => {
      const v = await verifyDomain(d.domain);
      setCheck(v);
      if (v.verified) await props.onChange();
    });
  // Checks itself while pending (the owner only: the API lets only the owner verify).
  useInterval(runVerify, owner && pending && !verify.pending ? VERIFY_EVERY_MS : null);
  return (
    <li className="card">
      <h2 className="card-title">{d.domain}</h2>
      <p>
        <span className={`badge ${pending ? 'warn' : 'ok'}`} role="status" aria-live="polite">
          {pending ? 'Waiting for DNS verification' : 'Verified'}
        </span>{' '}
        {owner ? null : <span className="muted">shared with you by {d.owner} (read-only)</span>}
      </p>
      <dl className="facts">
        <dt>Certificate</dt>
        <dd>
          {d.tls.status}
          {d.tls.notAfter ? (
            <>
              , until <When iso={d.tls.notAfter} />
            </>
          ) : null}
        </dd>
        {d.tls.lastError ? (
          <>
            <dt>Last error</dt>
            <dd>{d.tls.lastError}</dd>
          </>
        ) : null}
        <dt>Added</dt>
        <dd>
          <When iso={d.createdAt} />
        </dd>
      </dl>
      {owner && d.records ? <Records records={d.records} check={check} /> : null}
      {owner && pending ? (
        <div className="row">
          <button type="button" onClick={runVerify} disabled={verify.pending}>
            Check DNS now
          </button>
          <span className="muted small">Checked again every {VERIFY_EVERY_MS / 1000} s while this page is open.</span>
        </div>
      ) : null}
      <Problem error={verify.error} what="Verification" />
      {check && check.problems.length > 0 ? (
        <ul className="problems" aria-label={`What is missing for ${d.domain}`}>
          {check.problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      ) : null}
      {owner ? <Shares d={d} onChange={props.onChange} /> : null}
      {owner ? (
        <div className="row end">
          <ConfirmButton
            label="Delete domain"
            accessibleLabel={`Delete domain ${d.domain}`}
            question={
              <>
                Delete <strong>{d.domain}</strong>? Tunnels on it stop being served and its certificate is forgotten.
              </>
            }
            confirm="Delete"
            onConfirm={async () => {
              await deleteDomain(d.domain);
              await props.onChange();
            }}
          />
        </div>
      ) : null}
    </li>
  );
}

function Records(props: { records: DnsRecord[]; check: Verification | undefined }) {
  return (
    <div className="records">
      <h3>DNS records to create</h3>
      <ul>
        {props.records.map((r) => {
          const found = props.check?.records.find((c) => c.name === r.name && c.type === r.type);
          return (
            <li key={`${r.type} ${r.name}`} className="record">
              <p className="muted small">{r.purpose}</p>
              <p>
                <code>{r.name}</code> <CopyButton text={r.name} label={`the name of the ${r.type} record ${r.name}`} />
              </p>
              <p>
                <span className="badge">{r.type}</span> <code>{r.value}</code> <CopyButton text={r.value} label={`the value of the ${r.type} record ${r.name}`} />
              </p>
              {found ? (
                <p className={found.ok ? 'ok-text small' : 'warn-text small'}>
                  {found.ok ? 'Found.' : (found.problem ?? 'Not found yet.')} {found.found.length ? `DNS answered: ${found.found.join(', ')}` : ''}
                </p>
              ) : null}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function Shares(props: { d: DomainRow; onChange: () => Promise<void> }) {
  const { d } = props;
  const [who, setWho] = useDraft(`domains:${d.domain}:share`);
  const share = useAction();
  const unshare = useAction();
  const problem = useServerCheck(who.trim(), (v) => validateShare(d.domain, splitList(v)));
  return (
    <div className="shares">
      <h3>Shared with</h3>
      {d.shares.length === 0 ? <p className="muted">Nobody: only you can create tunnels on it.</p> : null}
      <ul className="members" aria-label={`Who ${d.domain} is shared with`}>
        {d.shares.map((s) => (
          <li key={s}>
            <span>{s}</span>
            <button type="button" className="small-button" aria-label={`Stop sharing ${d.domain} with ${s}`} disabled={unshare.pending} onClick={() => void unshare.run(async () => { await unshareDomain(d.domain, s); await props.onChange(); })}>
              Unshare
            </button>
          </li>
        ))}
      </ul>
      <Problem error={unshare.error} />
      <ActionForm
        label={`Share ${d.domain}`}
        className="inline-form"
        onSubmit={() =>
          void share.run(async () => {
            await shareDomain(d.domain, splitList(who));
            setWho('');
            await props.onChange();
          })
        }
      >
        <TextField label={`Share ${d.domain} with`} value={who} onChange={(v) => { setWho(v); share.clear(); }} serverError={share.error?.message ?? problem?.message} placeholder="alice@example.com or @example.com" />
        <button type="submit" disabled={share.pending || !who.trim() || blocksSubmit(problem)}>
          Share
        </button>
      </ActionForm>
    </div>
  );
}
