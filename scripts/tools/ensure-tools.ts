/**
 * `npm test` runs this first (the `pretest` script): installs every real peer the tests need, so a fresh
 * machine needs nothing done by hand. Each tool lives in its own module and is listed in ALL_TOOLS.
 * `node scripts/tools/ensure-tools.ts ferretdb etcd` installs only the named ones.
 */
import { ensureTool, type Tool } from './toolbox.ts';
import { ALL_TOOLS } from './registry.ts';

const wanted = process.argv.slice(2);
const tools: Tool[] = wanted.length ? ALL_TOOLS.filter((t) => wanted.includes(t.name)) : ALL_TOOLS;
for (const name of wanted) {
  if (!ALL_TOOLS.some((t) => t.name === name)) {
    console.error(`unknown tool ${name}; known: ${ALL_TOOLS.map((t) => t.name).join(', ')}`);
    process.exit(2);
  }
}
for (const tool of tools) {
  const started = Date.now();
  const dir = await ensureTool(tool, (m) => console.error(`[tools] ${m}`));
  console.error(`[tools] ${tool.name} ${tool.version} ready in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
