import { useId, useRef, useState, type FormEvent, type ReactNode } from 'react';
import type { ApiError } from './api.ts';
import { asApiError } from './use-load.ts';

// The console's few building blocks: a page title that takes focus, the API's error, a text
// field that validates as it is typed, copy and confirm buttons, times.

export function PageTitle(props: { children: ReactNode }) {
  return (
    <h1 id="page-title" tabIndex={-1}>
      {props.children}
    </h1>
  );
}

/** The API's error, as the API worded it (never a blank page). */
export function Problem(props: { error: ApiError | undefined; what?: string }) {
  if (!props.error) return null;
  return (
    <div className="problem" role="alert">
      <p>
        {props.what ? <strong>{props.what}: </strong> : null}
        {props.error.message}
      </p>
      {props.error.code ? <p className="muted small">code {props.error.code}{props.error.status ? `, HTTP ${props.error.status}` : ''}</p> : null}
    </div>
  );
}

export function Loading(props: { loading: boolean; what: string }) {
  return props.loading ? (
    <p className="muted" role="status">
      Loading {props.what}…
    </p>
  ) : null;
}

/** An action's state: run it, show its error, disable the button while it runs. */
export function useAction(): { pending: boolean; error: ApiError | undefined; run: (fn: () => Promise<void>) => Promise<boolean>; clear: () => void } {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError>();
  return {
    pending,
    error,
    clear: () => setError(undefined),
    run: async (fn) => {
      setPending(true);
      setError(undefined);
      try {
        await fn();
        return true;
      } catch (err) {
        setError(asApiError(err));
        return false;
      } finally {
        setPending(false);
      }
    },
  };
}

/** Runs `validate` (the API's own checks where they can run here) to a message, or undefined when fine. */
export function checkWith(validate: (v: string) => unknown): (v: string) => string | undefined {
  return (v) => {
    try {
      validate(v);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  };
}

export function TextField(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  /** A message when the value is not acceptable yet (shown as it is typed, once something is typed). */
  validate?: (v: string) => string | undefined;
  /** What the API said about the last submitted value; cleared by typing. */
  serverError?: string;
  hint?: string;
  type?: 'text' | 'email' | 'datetime-local';
  autoComplete?: string;
  required?: boolean;
  placeholder?: string;
}) {
  const id = useId();
  const message = props.serverError ?? (props.value && props.validate ? props.validate(props.value) : undefined);
  const describedBy = [props.hint ? `${id}-hint` : '', message ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {props.hint ? (
        <p id={`${id}-hint`} className="hint">
          {props.hint}
        </p>
      ) : null}
      <input
        id={id}
        type={props.type ?? 'text'}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={message ? true : undefined}
        aria-describedby={describedBy}
        autoComplete={props.autoComplete ?? 'off'}
        required={props.required}
        placeholder={props.placeholder}
        spellCheck={false}
        autoCapitalize="none"
      />
      {message ? (
        <p id={`${id}-error`} className="field-error" aria-live="polite">
          {message}
        </p>
      ) : null}
    </div>
  );
}

/** A form whose submit is an action: prevents the page load, shows the API's error. */
export function ActionForm(props: { label: string; onSubmit: () => void; children: ReactNode; className?: string }) {
  return (
    <form
      aria-label={props.label}
      className={props.className ?? 'card form'}
      noValidate
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      {props.children}
    </form>
  );
}

export function CopyButton(props: { text: string; label: string }) {
  const [done, setDone] = useState<string>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setDone('Copied');
    } catch {
      setDone('Copy failed: select the text and copy it by hand');
    }
    setTimeout(() => setDone(''), 4000);
  };
  return (
    <span className="copy">
      <button type="button" className="small-button" onClick={() => void copy()} aria-label={`Copy ${props.label}`}>
        Copy
      </button>
      <span className="muted small" role="status">
        {done}
      </span>
    </span>
  );
}

/**
 * A button that asks first, in a modal dialog (focus moves into it, Escape cancels, focus comes
 * back to the button), and shows the API's error there if the action fails.
 */
export function ConfirmButton(props: { label: string; accessibleLabel?: string; question: ReactNode; confirm: string; onConfirm: () => Promise<void> }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const action = useAction();
  const titleId = useId();
  const close = () => dialog.current?.close();
  return (
    <>
      <button type="button" className="small-button danger" aria-label={props.accessibleLabel} onClick={() => { action.clear(); dialog.current?.showModal(); }}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-labelledby={titleId} className="confirm">
        <p id={titleId}>{props.question}</p>
        <Problem error={action.error} />
        <div className="row">
          <button type="button" onClick={close} autoFocus>
            Cancel
          </button>
          <button type="button" className="danger" disabled={action.pending} onClick={() => void action.run(props.onConfirm).then((ok) => ok && close())}>
            {props.confirm}
          </button>
        </div>
      </dialog>
    </>
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function When(props: { iso: string | null | undefined; never?: string }) {
  if (!props.iso) return <span className="muted">{props.never ?? '—'}</span>;
  const d = new Date(props.iso);
  if (Number.isNaN(d.getTime())) return <span>{props.iso}</span>;
  return (
    <time dateTime={d.toISOString()} title={d.toISOString()}>
      {dateTime.format(d)}
    </time>
  );
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** "a, b, c" → ["a", "b", "c"] (commas, spaces or new lines). */
export function splitList(raw: string): string[] {
  return raw
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
