#!/usr/bin/env node
// Lifeboat's entry point. The CLI is TypeScript run directly by Node 24 (type stripping); inside the
// project `npx lifeboat` and the scripts/ wrappers use the Node 24 that package.json brings.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `lifeboat: needs Node.js 24 or newer, this is ${process.version} — run "npx lifeboat" inside the project (it uses the bundled Node 24) or install Node 24`,
  );
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
