#!/usr/bin/env node
// Entry point for `tunn`. In a clone it runs the TypeScript sources natively (Node 24 type
// stripping); in the npm package (no src/, see tsconfig.build.json) it runs the compiled dist/.
//
// This file must get as far as the version check on any Node.js that loads ES modules, so an
// older Node says what to do instead of a stack trace about `.ts` files or a missing export:
// no static imports (Node 20's node:module has no enableCompileCache, and a missing named
// export fails before any line runs), no top-level await, no syntax newer than ES2019.
const NEEDED_MAJOR = 24;

const have = process.versions.node;
if (!(Number(have.split('.')[0]) >= NEEDED_MAJOR)) {
  process.stderr.write(
    'tunn needs Node.js ' + NEEDED_MAJOR + ' or later (you have ' + have + ').\n' +
      'Install Node.js ' + NEEDED_MAJOR + ' LTS (https://nodejs.org/en/download, or `nvm install ' + NEEDED_MAJOR + '`) and run tunn again.\n' +
      'In a clone of the repository, `npx tunn` uses the Node ' + NEEDED_MAJOR + ' that `npm ci` installed in node_modules/.bin.\n',
  );
  process.exitCode = 1;
} else {
  start().catch((err) => {
    console.error((err && err.message) || err);
    process.exitCode = 1;
  });
}

async function start() {
  const fs = await import('node:fs');
  await enableCache(fs);
  const fromSource = fs.existsSync(new URL('../src/cli/main.ts', import.meta.url));
  const { main } = await import(fromSource ? '../src/cli/main.ts' : '../dist/cli/main.js');
  await main(process.argv.slice(2));
}

// Node's compile cache keeps each module's type-stripped source and V8 code cache between runs.
// A warm start then never loads the TypeScript stripper (swc compiled to WebAssembly: ~17 MiB of
// RSS held for the life of the process, a fifth of an idle relay) and compiles less. The cache
// lives in the user's own cache dir, not the shared /tmp: an entry is code the next run executes.
// It is used only when this user alone can write it and the dirs above it (`sudo` keeping
// another user's HOME must not run code that user planted). NODE_COMPILE_CACHE=<dir> picks
// another place; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Without a cache tunn works the
// same and only uses more memory, so a cache that cannot be made is not an error.
async function enableCache({ mkdirSync, statSync }) {
  if (process.env.NODE_COMPILE_CACHE) return;
  try {
    const { enableCompileCache } = await import('node:module');
    const { homedir } = await import('node:os');
    const { join } = await import('node:path');
    const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
    const dir = join(base, 'tunn', 'node-compile-cache');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ours = (d) => {
      const st = statSync(d);
      return (process.getuid === undefined || st.uid === process.getuid()) && (st.mode & 0o022) === 0;
    };
    if ([base, join(base, 'tunn'), dir].every(ours)) enableCompileCache(dir);
  } catch {
    // no writable home: run without the cache
  }
}
