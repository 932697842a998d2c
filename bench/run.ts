/**
 * `npm run bench`: throughput and memory of every layer, measured on this machine (not part of the tests).
 * `npm run bench -- core` runs one section. Sections: core (always available), and those other modules
 * register below when their servers can run here.
 */
import os from 'node:os';
import { benchCloud } from './cloud.ts';
import { benchCore } from './core.ts';
import { benchMongo } from './mongodb.ts';

const SECTIONS: Record<string, () => Promise<void>> = {
  core: benchCore,
  cloud: async () => {
    console.log(
      '\n== storage backends: 256 MiB of incompressible data, local disk vs Azurite vs versitygw (S3) ==',
    );
    await benchCloud({ log: (line) => console.log(line) });
  },
  mongodb: async () => {
    console.log('\n== MongoDB: generated Rocket.Chat-like data set through the real CLI ==');
    console.log(JSON.stringify(await benchMongo({ log: (line) => console.log(line) }), null, 2));
  },
};

const wanted = process.argv.slice(2);
console.log(
  `lifeboat bench — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
for (const [name, run] of Object.entries(SECTIONS)) {
  if (wanted.length && !wanted.includes(name)) continue;
  await run();
}
// Emulators started by the sections are children of this process: exit so they stop with it.
process.exit(0);
