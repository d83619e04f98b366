import { useEffect, useState, type MouseEvent, type ReactNode } from 'react';
import { CONSOLE_PAGES } from '../../src/api/console-paths.ts';

// A router small enough to read: the path is the page, links push history, Back works.

export const PAGES = CONSOLE_PAGES;

const listeners = new Set<() => void>();

export function navigate(to: string): void {
  history.pushState(null, '', to);
  for (const l of listeners) l();
}

/** The current location (path and query), updated on navigation and Back/Forward. */
export function useLocation(): { path: string; search: string } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = () => setTick((n) => n + 1);
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return { path: location.pathname, search: location.search };
}

export function Link(props: { to: string; children: ReactNode; current?: boolean; className?: string }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={props.to} onClick={onClick} aria-current={props.current ? 'page' : undefined} className={props.className}>
      {props.children}
    </a>
  );
}
