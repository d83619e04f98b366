#!/usr/bin/env node
// Entry point for `tunn` installed from npm. The sources are TypeScript run natively by Node 24
// (type stripping), so this only hands over to the CLI.
import { main } from '../src/cli/main.ts';
main(process.argv.slice(2)).catch((err) => {
  console.error(err?.message ?? err);
  process.exitCode = 1;
});
