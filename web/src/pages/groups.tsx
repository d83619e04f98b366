import { useState } from 'react';
import { requireEmail, requireEmails } from '../../../src/auth/emails.ts';
import { groupExists, requireGroupName } from '../../../src/auth/group-name.ts';
import { addMembers, createGroup, deleteGroup, listGroups, removeMember, type GroupRow } from '../api.ts';
import { ActionForm, checkWith, ConfirmButton, Loading, PageTitle, Problem, splitList, TextField, useAction, When } from '../ui.tsx';
import { useDraft, useLoad } from '../use-load.ts';

// Groups: create, add and remove emails, delete. A change applies to live tunnels at once
// (the relay reads members through the same service the CLI's commands change).
// Names and emails are checked as they are typed with the API's own validators and messages.

const checkEmails = checkWith((v: string) => requireEmails(splitList(v)));

export function GroupsPage() {
  const groups = useLoad(listGroups);
  return (
    <>
      <PageTitle>Groups</PageTitle>
      <p className="muted">
        A group is a list of emails you name in <code>-a group:NAME</code>. Changes apply to your live tunnels at once.
      </p>
      <NewGroup existing={groups.data ?? []} onCreated={groups.reload} />
      <Problem error={groups.error} what="Could not list your groups" />
      {groups.data === undefined ? <Loading loading={groups.loading} what="groups" /> : null}
      {groups.data && groups.data.length === 0 ? <p className="card">No groups yet.</p> : null}
      {groups.data && groups.data.length > 0 ? (
        <ul className="cards" aria-label="Your groups">
          {groups.data.map((g) => (
            <GroupCard key={g.name} group={g} onChange={groups.reload} />
          ))}
        </ul>
      ) : null}
    </>
  );
}

function NewGroup(props: { existing: GroupRow[]; onCreated: () => Promise<void> }) {
  const [name, setName] = useDraft('groups:new:name');
  const [emails, setEmails] = useDraft('groups:new:emails');
  const [serverError, setServerError] = useState<{ field: 'name' | 'emails' | 'form'; message: string }>();
  const action = useAction();
  const checkName = checkWith((v: string) => {
    const n = requireGroupName(v);
    if (props.existing.some((g) => g.name === n)) throw groupExists(n);
  });
  const submit = () =>
    void action.run(async () => {
      setServerError(undefined);
      try {
        await createGroup(name.trim(), splitList(emails));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        // Put the API's message beside the field it is about.
        setServerError({ field: /email/i.test(message) ? 'emails' : /group/i.test(message) ? 'name' : 'form', message });
        throw err;
      }
      setName('');
      setEmails('');
      await props.onCreated();
    });
  return (
    <ActionForm label="New group" onSubmit={submit}>
      <h2>New group</h2>
      <TextField
        label="Name"
        value={name}
        onChange={(v) => {
          setName(v);
          setServerError(undefined);
        }}
        validate={checkName}
        serverError={serverError?.field === 'name' ? serverError.message : undefined}
        hint="Lower-case letters, digits, - and _"
        required
      />
      <TextField
        label="Members (optional)"
        value={emails}
        onChange={(v) => {
          setEmails(v);
          setServerError(undefined);
        }}
        validate={checkEmails}
        serverError={serverError?.field === 'emails' ? serverError.message : undefined}
        hint="Emails separated by commas or spaces"
      />
      {serverError?.field === 'form' ? <Problem error={action.error} /> : null}
      <button type="submit" disabled={action.pending || !name || checkName(name) !== undefined}>
        Create group
      </button>
    </ActionForm>
  );
}

function GroupCard(props: { group: GroupRow; onChange: () => Promise<void> }) {
  const g = props.group;
  const [email, setEmail] = useDraft(`groups:${g.name}:add`);
  const add = useAction();
  const remove = useAction();
  const checkEmail = checkWith((v: string) => splitList(v).forEach((e) => requireEmail(e)));
  return (
    <li className="card">
      <h2 className="card-title">{g.name}</h2>
      <p className="muted small">
        <code>-a group:{g.name}</code> · changed <When iso={g.updatedAt} />
      </p>
      {g.emails.length === 0 ? <p className="muted">No members.</p> : null}
      <ul className="members" aria-label={`Members of ${g.name}`}>
        {g.emails.map((e) => (
          <li key={e}>
            <span>{e}</span>
            <button type="button" className="small-button" aria-label={`Remove ${e} from ${g.name}`} disabled={remove.pending} onClick={() => void remove.run(async () => { await removeMember(g.name, e); await props.onChange(); })}>
              Remove
            </button>
          </li>
        ))}
      </ul>
      <Problem error={remove.error} />
      <ActionForm
        label={`Add members to ${g.name}`}
        className="inline-form"
        onSubmit={() =>
          void add.run(async () => {
            await addMembers(g.name, splitList(email));
            setEmail('');
            await props.onChange();
          })
        }
      >
        <TextField label={`Add to ${g.name}`} value={email} onChange={(v) => { setEmail(v); add.clear(); }} validate={checkEmail} serverError={add.error?.message} type="text" placeholder="alice@example.com" />
        <button type="submit" disabled={add.pending || !email || checkEmail(email) !== undefined}>
          Add
        </button>
      </ActionForm>
      <div className="row end">
        <ConfirmButton
          label="Delete group"
          accessibleLabel={`Delete group ${g.name}`}
          question={
            <>
              Delete the group <strong>{g.name}</strong>? Tunnels that allow <code>group:{g.name}</code> stop letting its members in.
            </>
          }
          confirm="Delete"
          onConfirm={async () => {
            await deleteGroup(g.name);
            await props.onChange();
          }}
        />
      </div>
    </li>
  );
}
