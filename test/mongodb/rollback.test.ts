/**
 * A restore that fails half-way rolls back: the test kills the server (SIGKILL, as a crash) while the
 * restore is writing, restarts it once the CLI reports the failure, and checks the target is exactly as
 * it was before. Needs the FerretDB the tests start (a server it may kill); with LIFEBOAT_TEST_MONGODB_URI
 * set it is skipped, since the test must not kill someone else's MongoDB.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { generateSample } from '../../src/sources/mongodb/sample-data.ts';
import { hashCollection } from '../../src/sources/mongodb/restore.ts';

const external = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI);
let server: MongoTestServer;
let work: TempDir;
let env: NodeJS.ProcessEnv;

async function state(uri: string, db: string): Promise<Record<string, string>> {
  const client = new MongoClient(uri);
  try {
    const out: Record<string, string> = {};
    for (const { name } of (await client.db(db).listCollections({}, { nameOnly: true }).toArray()).sort(
      (a, b) => (a.name < b.name ? -1 : 1),
    )) {
      const h = await hashCollection(client, db, name);
      out[name] = `${h.count}:${h.hex()}`;
    }
    return out;
  } finally {
    await client.close();
  }
}

before(async () => {
  if (external) return;
  server = await startFerretDB();
  work = await tempDir();
  env = {
    LIFEBOAT_PASSWORD: 'rollback test',
    LIFEBOAT_MONGODB_URI: server.uri,
    XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
  };
  const init = await runCli(['--repo', path.join(work.path, 'repo'), 'init'], { env, cwd: work.path });
  assert.equal(init.code, 0, init.stderr);
});

after(async () => {
  await server?.stop();
  await work?.cleanup();
});

test(
  'server killed mid-restore: the restore fails, waits for the server, and rolls every touched namespace back',
  { skip: external && 'needs a server the test may kill (FerretDB)' },
  async () => {
    const repo = path.join(work.path, 'repo');
    const client = new MongoClient(server.uri);
    await client.connect();
    try {
      await generateSample(client, {
        db: 'rb',
        users: 200,
        rooms: 20,
        messages: 60_000,
        uploads: 10,
        seed: 3,
      });
      const backup = await runCli(['--repo', repo, 'mongodb', 'backup', '--json'], { env, cwd: work.path });
      assert.equal(backup.code, 0, backup.stderr);
      // Today's target differs from the snapshot: fewer messages, an extra user, a collection the snapshot lacks.
      await client.db('rb').collection('rocketchat_message').deleteMany({ t: 'uj' });
      await client
        .db('rb')
        .collection('users')
        .insertOne({ _id: 'only-today' as never, username: 'today' });
      await client.db('rb').collection('only_today').insertOne({ x: 1 });
    } finally {
      await client.close();
    }
    const before = await state(server.uri, 'rb');

    const child = spawnCli(
      [
        '--repo',
        repo,
        'mongodb',
        'restore',
        'latest',
        '--drop',
        '--server-timeout',
        '3',
        '--insertion-workers',
        '1',
        '--parallel',
        '1',
      ],
      {
        env: { ...env },
        cwd: work.path,
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.resume();
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));

    // Wait until the restore is writing messages, then crash the server.
    const watcher = new MongoClient(server.uri, { serverSelectionTimeoutMS: 2000 });
    await watcher.connect();
    // --drop empties the collection first, so a count between 5000 and 50000 means "half-way".
    let seen = 0;
    for (let i = 0; i < 4800 && !(seen >= 5000 && seen < 50_000); i++) {
      if (stderr.includes('pre-restore'))
        seen = await watcher.db('rb').collection('rocketchat_message').countDocuments();
      await new Promise((r) => setTimeout(r, 10));
    }
    await watcher.close();
    assert.ok(seen >= 5000 && seen < 50_000, `restore not caught half-way (${seen} messages): ${stderr}`);
    await server.kill();

    for (let i = 0; i < 1200 && !/rolling back/.test(stderr); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /restore failed .* rolling back/);
    await server.restart();
    const code = await exited;
    assert.equal(code, 1, stderr);
    assert.match(stderr, /cannot reach the server|connection/i);
    assert.match(stderr, /rolled back: .*rb\./);
    assert.deepEqual(await state(server.uri, 'rb'), before);
  },
);
