/**
 * `npm run bench`: throughput and memory of every layer, measured on this machine (not part of the tests).
 * `npm run bench -- core` runs one section. Sections: core (always available), and those other modules
 * register below when their servers can run here.
 */
import os from 'node:os';
import { benchCore } from './core.ts';

const SECTIONS: Record<string, () => Promise<void>> = {
  core: benchCore,
};

const wanted = process.argv.slice(2);
console.log(`lifeboat bench — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
for (const [name, run] of Object.entries(SECTIONS)) {
  if (wanted.length && !wanted.includes(name)) continue;
  await run();
}
