import { useCallback, useEffect, useRef, useState, type Dispatch, type SetStateAction } from 'react';
import { ApiError } from './api.ts';

// A page's data hook: load, show the API's error when it fails, reload on demand. A reload keeps
// what is on screen until the new answer arrives (no flashing to empty). What is shown is keyed
// by the loader (its deps): when they change (e.g. the Tokens page switching to every account),
// the previous answer is no longer shown under the new key — `data` is undefined until the new
// one arrives — and an answer to a superseded load is dropped.

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => Promise<void>;
}

export function asApiError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'CONSOLE', err instanceof Error ? err.message : String(err));
}

interface Answer<T> {
  /** The loader this answers (its identity changes with the deps). */
  for: () => Promise<T>;
  data?: T;
  error?: ApiError;
}

export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[] = []): Loaded<T> {
  const [answer, setAnswer] = useState<Answer<T>>();
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(load, deps);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const d = await run();
      if (mine !== seq.current) return;
      setAnswer({ for: run, data: d });
    } catch (err) {
      if (mine !== seq.current) return;
      // A failed reload keeps the last data of the same key on screen, with the error beside it.
      setAnswer((prev) => ({ for: run, data: prev?.for === run ? prev.data : undefined, error: asApiError(err) }));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, [run]);
  useEffect(() => {
    void reload();
  }, [reload]);
  // An answer for other deps than the current ones is not this page's data (the render between a
  // deps change and the effect that reloads would otherwise show it under the new key).
  const current = answer?.for === run ? answer : undefined;
  return { data: current?.data, error: current?.error, loading: loading || current === undefined, reload };
}

/** Runs `fn` every `ms` while the page is visible (and once more when it becomes visible again). */
export function useInterval(fn: () => void, ms: number | null): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') saved.current();
    }, ms);
    return () => clearInterval(t);
  }, [ms]);
}

/**
 * A form field's value that survives a trip to the sign-in page (sessionStorage: this tab only,
 * gone when the tab closes): what was typed before a session expired is still there when the
 * console comes back. Only for values that are not secrets.
 */
export function useDraft(key: string): [string, Dispatch<SetStateAction<string>>] {
  const storageKey = `tunn-draft:${key}`;
  const [value, setValue] = useState(() => sessionStorage.getItem(storageKey) ?? '');
  useEffect(() => {
    if (value) sessionStorage.setItem(storageKey, value);
    else sessionStorage.removeItem(storageKey);
  }, [storageKey, value]);
  return [value, setValue];
}

/**
 * The API's own verdict on a field's value, asked as it is typed (debounced: once typing pauses
 * for `ms`): its refusal (code, status and message), or undefined when it would be accepted, is
 * empty, or is still being asked about. An answer for a value no longer in the field is dropped.
 */
export function useServerCheck(value: string, check: (v: string) => Promise<void>, ms = 300): ApiError | undefined {
  const [verdict, setVerdict] = useState<{ value: string; error: ApiError | undefined }>();
  const saved = useRef(check);
  saved.current = check;
  useEffect(() => {
    if (!value) return;
    let current = true;
    const t = setTimeout(() => {
      saved.current(value).then(
        () => current && setVerdict({ value, error: undefined }),
        (err: unknown) => {
          // Unreachable or a sign-in on the way: say nothing here (the submit says it).
          const e = asApiError(err);
          if (current && e.status >= 400 && e.status !== 401) setVerdict({ value, error: e });
        },
      );
    }, ms);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [value, ms]);
  return verdict?.value === value ? verdict.error : undefined;
}

/** Whether a refusal is about the typed text itself (400: fix the text), not about state that may change (409: e.g. DNS records still to create). */
export function blocksSubmit(e: ApiError | undefined): boolean {
  return e !== undefined && e.status === 400;
}
