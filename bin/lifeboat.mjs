#!/usr/bin/env node
// Lifeboat's entry point, for a checkout and for the installed package alike.
// - Checkout: the CLI is the TypeScript in src/, run directly by Node 24 (type stripping); `npx lifeboat`
//   and the scripts/ wrappers use the Node 24 that package.json brings on Linux x64.
// - Installed package (`npm install -g lifeboat-X.tgz`, the container image): Node refuses to strip types
//   under node_modules, so the package ships dist/, the same modules compiled 1:1 to JavaScript by
//   `npm run build` (prepack), and no src/.
// src/ wins whenever it is there outside node_modules, so a dist/ left over from an earlier `npm pack`
// never shadows the sources being edited and tested — unless LIFEBOAT_RUNTIME=dist asks for the compiled
// modules: `npm run bench` builds them and measures what the package ships, which starts without type
// stripping.
import { existsSync } from 'node:fs';
import { URL, fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `lifeboat: needs Node.js 24 or newer, this is ${process.version} — install Node 24 (inside a checkout, "npx lifeboat" uses the bundled Node 24 on Linux x64)`,
  );
  process.exit(2);
}
const sources = new URL('../src/cli/main.ts', import.meta.url);
const packaged =
  process.env.LIFEBOAT_RUNTIME === 'dist' ||
  !existsSync(sources) ||
  fileURLToPath(sources).split(/[\\/]/).includes('node_modules');
if (packaged && !existsSync(new URL('../dist/cli/main.js', import.meta.url))) {
  console.error(
    'lifeboat: dist/ is not built (LIFEBOAT_RUNTIME=dist or a package without it) — run `npm run build`',
  );
  process.exit(2);
}
const { main } = await import(packaged ? '../dist/cli/main.js' : '../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
