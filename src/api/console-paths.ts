// The web console's pages (web/src/router.tsx): the relay answers each of these paths with the
// console's index.html (src/api/console.ts), and the console shows the page for the path.
// Pure: shared by both sides.

export const CONSOLE_PAGES = [
  { path: '/', title: 'Tunnels' },
  { path: '/groups', title: 'Groups' },
  { path: '/domains', title: 'Domains' },
  { path: '/certificates', title: 'Certificates' },
  { path: '/tokens', title: 'Tokens' },
  { path: '/events', title: 'Events' },
  { path: '/me', title: 'Me' },
] as const;

export type ConsolePath = (typeof CONSOLE_PAGES)[number]['path'];
