// Builds the web console (web/) into web/dist/ with Vite: static files with hashed names, which
// the relay serves from its own host (src/api/console.ts). Runs from `npm ci` (prepare),
// `npm start` and `npm test` (prestart, pretest) and `npm pack` (build-package.ts); it skips the
// build when web/dist/ is newer than every source file, so only the first of them pays for it.
//
//   node scripts/build-web.ts           build when out of date
//   node scripts/build-web.ts --force   always build
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const WEB_ROOT = resolve(import.meta.dirname, '../web');
export const WEB_DIST = join(WEB_ROOT, 'dist');
const STAMP = join(WEB_DIST, 'index.html');
// The console's sources, and the API types and validators it compiles in.
const SOURCES = [join(WEB_ROOT, 'src'), join(WEB_ROOT, 'index.html'), resolve(import.meta.dirname, '../src/api'), resolve(import.meta.dirname, '../src/auth/emails.ts'), resolve(import.meta.dirname, '../src/auth/group-name.ts'), import.meta.filename];

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((n) => newest(join(path, n))));
}

/** Whether web/dist/ is missing or older than a source file. */
export function webBuildStale(): boolean {
  if (!existsSync(STAMP)) return true;
  const built = statSync(STAMP).mtimeMs;
  return SOURCES.some((s) => existsSync(s) && newest(s) > built);
}

/** Builds the console into web/dist/ (when stale, or always with `force`). */
export async function buildWeb(opts: { force?: boolean; quiet?: boolean } = {}): Promise<void> {
  if (!opts.force && !webBuildStale()) return;
  // Imported here, not at the top: the relay never needs Vite, and a packed install has none.
  const { build } = await import('vite');
  const { default: react } = await import('@vitejs/plugin-react');
  await build({
    root: WEB_ROOT,
    configFile: false,
    logLevel: opts.quiet ? 'warn' : 'info',
    plugins: [react()],
    base: '/',
    build: {
      outDir: WEB_DIST,
      emptyOutDir: true,
      assetsDir: 'assets',
      sourcemap: false,
      // Everything in files: the CSP allows no inline script, style or data: fonts.
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
    },
  });
}

if (import.meta.main) {
  const force = process.argv.includes('--force');
  if (force || webBuildStale()) process.stderr.write('tunn: building the web console (web/ → web/dist/)\n');
  buildWeb({ force, quiet: true }).catch((err: unknown) => {
    process.stderr.write(`building the web console failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
