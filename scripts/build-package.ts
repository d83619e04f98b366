// `npm pack` / `npm publish` run this (the `prepack` script): the package ships compiled
// JavaScript in dist/, because Node does not strip types from files under node_modules.
// tsc emits dist/ from src/ (tsconfig.build.json rewrites the `.ts` import extensions to `.js`);
// then every file the code reads beside itself at run time (the inspector's page, and any
// other non-TypeScript file under src/) is copied to the same place under dist/. The web console
// is built into web/dist/ (scripts/build-web.ts), which dist/api/console.js finds at the same
// relative place as src/api/console.ts does.
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { buildWeb } from './build-web.ts';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
cpSync(join(root, 'src'), dist, {
  recursive: true,
  filter: (path) => statSync(path).isDirectory() || !/\.(ts|md)$/.test(path),
});
await buildWeb({ force: true, quiet: true });
