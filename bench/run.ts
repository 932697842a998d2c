/**
 * `npm run bench`: throughput and memory of every layer, measured on this machine (not part of the tests).
 * `npm run bench -- core` runs one section. Sections: core (always available), and those other modules
 * register below when their servers can run here.
 */
import os from 'node:os';
import { benchCloud } from './cloud.ts';
import { benchCore } from './core.ts';
import { benchMongo } from './mongodb.ts';
import { buildRuntime } from './lib.ts';

const SECTIONS: Record<string, () => Promise<void>> = {
  core: benchCore,
  cloud: async () => {
    console.log(
      '\n== storage backends: 256 MiB of incompressible data, local disk vs Azurite vs versitygw (S3) ==',
    );
    await benchCloud({ log: (line) => console.log(line) });
  },
  mongodb: async () => {
    console.log(
      '\n== MongoDB: generated Rocket.Chat-like data set through the real CLI, against the plain driver ==',
    );
    const m = await benchMongo({ log: (line) => console.log(`[bench mongodb] ${line}`) });
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(`${m.server}, ${(m.dataBytes / 2 ** 20).toFixed(0)} MiB of BSON, ${m.documents} documents`);
    console.log(`find baseline ${s(m.baseline.findMs)}, insert baseline ${s(m.baseline.insertMs)}`);
    console.log(
      `backup                        ${s(m.backup.ms).padStart(8)}  ${m.ratios.backupVsFind.toFixed(2)}× the find baseline (goal 0.90)`,
    );
    console.log(
      `restore --no-verify           ${s(m.restoreNoVerify.ms).padStart(8)}  ${m.ratios.restoreNoVerifyVsInsert.toFixed(2)}× the insert baseline (goal 0.90)`,
    );
    console.log(
      `restore, verified             ${s(m.restore.ms).padStart(8)}  ${m.ratios.restoreVerifiedVsInsert.toFixed(2)}× the insert baseline (goal 0.75)`,
    );
    console.log(JSON.stringify(m, null, 2));
  },
};

const wanted = process.argv.slice(2);
// Every section runs the CLI as the package ships it: compiled to JavaScript, no type stripping.
await buildRuntime();
console.log(
  `lifeboat bench — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
for (const [name, run] of Object.entries(SECTIONS)) {
  if (wanted.length && !wanted.includes(name)) continue;
  await run();
}
// Emulators started by the sections are children of this process: exit so they stop with it.
process.exit(0);
