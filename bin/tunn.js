#!/usr/bin/env node
// Entry point for `tunn` installed from npm. The sources are TypeScript run natively by Node 24
// (type stripping), so this only turns on the compile cache and hands over to the CLI.
import { mkdirSync, statSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Node's compile cache keeps each module's type-stripped source and V8 code cache between runs.
// A warm start then never loads the TypeScript stripper (swc compiled to WebAssembly: ~17 MiB of
// RSS held for the life of the process, a fifth of an idle relay) and compiles less. The cache
// lives in the user's own cache dir, not the shared /tmp: an entry is code the next run executes.
// It is used only when this user alone can write it and the dirs above it (`sudo` keeping
// another user's HOME must not run code that user planted). NODE_COMPILE_CACHE=<dir> picks
// another place; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Without a cache tunn works the
// same and only uses more memory, so a cache that cannot be made is not an error.
if (!process.env.NODE_COMPILE_CACHE) {
  try {
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

const { main } = await import('../src/cli/main.ts');
main(process.argv.slice(2)).catch((err) => {
  console.error(err?.message ?? err);
  process.exitCode = 1;
});
