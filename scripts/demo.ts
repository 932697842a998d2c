/**
 * `npm start`: Lifeboat's main job on embedded defaults, on a fresh machine, with nothing to configure.
 *
 *   1. installs FerretDB (a MongoDB-wire server; built from the Go module proxy the first time) and starts it
 *      on a free loopback port, its data in ./.lifeboat-demo/
 *   2. loads a Rocket.Chat-shaped sample database the first time
 *   3. `lifeboat init` (./lifeboat-repo, key file ~/.config/lifeboat/default.key) unless it exists
 *   4. `lifeboat mongodb backup`, `lifeboat check`, then a restore into `rocketchat_restored` verified
 *      against the snapshot's counts and hashes
 *
 * Every step is the real CLI, printed as it runs, so the output doubles as a tour of the commands.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { generateSample, specForBytes } from '../src/sources/mongodb/sample-data.ts';
import { ferretdb } from './tools/ferretdb.ts';
import { PROJECT_ROOT, ensureTool } from './tools/toolbox.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'lifeboat.mjs');
const DEMO_DIR = path.resolve('.lifeboat-demo');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function lifeboat(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  console.log(`\n$ lifeboat ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    });
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`lifeboat ${args[0]} exited with ${code}`)),
    );
  });
}

async function waitForServer(uri: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1000 });
    try {
      await client.connect();
      await client.db('admin').command({ hello: 1 });
      return;
    } catch (e) {
      if (Date.now() > deadline)
        throw new Error(`FerretDB did not answer on ${uri}: ${(e as Error).message}`, { cause: e });
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await client.close().catch(() => {});
    }
  }
}

console.log(
  'Lifeboat demo: MongoDB-wire server with sample data -> encrypted repository -> verified restore',
);
const bin = path.join(await ensureTool(ferretdb, (m) => console.log(`[setup] ${m}`)), 'ferretdb');
await mkdir(path.join(DEMO_DIR, 'data'), { recursive: true });
const port = await freePort();
const uri = `mongodb://127.0.0.1:${port}/`;
const server = spawn(
  bin,
  [
    '--handler=sqlite',
    `--sqlite-url=file:${DEMO_DIR}/data/`,
    `--state-dir=${DEMO_DIR}`,
    `--listen-addr=127.0.0.1:${port}`,
    '--debug-addr=-',
    '--telemetry=disable',
    '--log-level=error',
  ],
  { stdio: 'ignore' },
);
const stopServer = () => server.kill('SIGTERM');
process.on('exit', stopServer);
try {
  await waitForServer(uri);
  console.log(`[setup] FerretDB listening on ${uri} (data in ${DEMO_DIR})`);
  const client = new MongoClient(uri);
  await client.connect();
  const existing = await client.db('rocketchat').listCollections().toArray();
  if (existing.length === 0) {
    console.log(
      '[setup] loading a Rocket.Chat-shaped sample database (users, rooms, subscriptions, messages, uploads)…',
    );
    const r = await generateSample(client, specForBytes(24 * 1024 * 1024));
    console.log(
      `[setup] ${Object.entries(r.counts)
        .map(([c, n]) => `${n} ${c}`)
        .join(', ')}`,
    );
  }
  await client.db('rocketchat_restored').dropDatabase();
  await client.close();

  const env = { LIFEBOAT_MONGODB_URI: uri };
  if (!existsSync(path.resolve('lifeboat-repo'))) await lifeboat(['init'], env);
  await lifeboat(['mongodb', 'backup', '--ns-include', 'rocketchat.*'], env);
  await lifeboat(['snapshots', '--type', 'mongodb'], env);
  await lifeboat(['check'], env);
  await lifeboat(
    [
      'mongodb',
      'restore',
      'latest',
      '--ns-from',
      'rocketchat.*',
      '--ns-to',
      'rocketchat_restored.*',
      '--drop',
    ],
    env,
  );
  await lifeboat(['stats'], env);
  console.log('\nDone: the sample database was backed up into ./lifeboat-repo, checked, and restored into');
  console.log(
    "rocketchat_restored with every collection's count and content hash verified. Run it again to see",
  );
  console.log('deduplication at work; `npx lifeboat help` lists every command.');
} finally {
  stopServer();
}
