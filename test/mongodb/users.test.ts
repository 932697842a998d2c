/**
 * `--include-users`: users and roles backed up from admin.system.users/roles, exported under those names
 * (what mongorestore restores), and merged back with `_mergeAuthzCollections`.
 *
 * Server: FerretDB with authentication on (it keeps users in admin.system.users, but has no
 * _mergeAuthzCollections: the restore must refuse before touching anything), or with
 * LIFEBOAT_TEST_MONGODB_URI a real MongoDB whose user may manage users (the full merge and check).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { startFerretDB, startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { readBsonFile } from '../../src/sources/mongodb/dumpdir.ts';
import { hashCollection } from '../../src/sources/mongodb/restore.ts';
import { deserialize } from 'bson';

const external = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI);
const ROOT = { username: 'root', password: 'users test root' };
const DB = 'lifeboat_users_test';
const USER = 'lifeboat_test_reader';
let server: MongoTestServer;
let client: MongoClient;
let work: TempDir;
let env: NodeJS.ProcessEnv;
let repo: string;
let withUsers: string;
let withoutUsers: string;

const cli = (args: string[]) => runCli(['--repo', repo, ...args], { env, cwd: work.path });

async function userExists(): Promise<boolean> {
  const r = await client.db(DB).command({ usersInfo: { user: USER, db: DB } });
  return r.users.length === 1;
}

before(async () => {
  server = external ? await startMongo() : await startFerretDB({ auth: ROOT });
  const uri = external
    ? server.uri
    : server.uri.replace('mongodb://', `mongodb://${ROOT.username}:${encodeURIComponent(ROOT.password)}@`) +
      '?authSource=admin';
  client = new MongoClient(uri);
  await client.connect();
  await client.db(DB).dropDatabase();
  await client
    .db(DB)
    .command({ dropUser: USER })
    .catch(() => {});
  await client.db(DB).command({ createUser: USER, pwd: 'reader password', roles: [] });
  await client
    .db(DB)
    .collection('messages')
    .insertMany([{ msg: 'hello' }, { msg: 'world' }]);
  work = await tempDir();
  repo = path.join(work.path, 'repo');
  env = {
    LIFEBOAT_PASSWORD: 'users test',
    LIFEBOAT_MONGODB_URI: uri,
    XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
  };
  assert.equal((await cli(['init'])).code, 0);
  const b1 = await cli(['--json', 'mongodb', 'backup', '--ns-include', `${DB}.*`, '--include-users']);
  assert.equal(b1.code, 0, b1.stderr);
  withUsers = JSON.parse(b1.stdout).id;
  const b2 = await cli(['--json', 'mongodb', 'backup', '--ns-include', `${DB}.*`, '--no-retention']);
  assert.equal(b2.code, 0, b2.stderr);
  withoutUsers = JSON.parse(b2.stdout).id;
});

after(async () => {
  await client
    ?.db(DB)
    .command({ dropUser: USER })
    .catch(() => {});
  await client?.db(DB).dropDatabase();
  await client?.close();
  await server?.stop();
  await work?.cleanup();
});

test('backup --include-users keeps admin.system.users (all users), and export writes it where mongorestore looks', async () => {
  const show = await cli(['--json', 'show', withUsers.slice(0, 12)]);
  const items = JSON.parse(show.stdout).items as { name: string; records: number }[];
  const users = items.find((i) => i.name === 'admin.system.users');
  assert.ok(users && users.records >= 2, JSON.stringify(items.map((i) => i.name)));
  const plain = JSON.parse((await cli(['--json', 'show', withoutUsers.slice(0, 12)])).stdout).items as {
    name: string;
  }[];
  assert.ok(!plain.some((i) => i.name.startsWith('admin.')));

  const dir = path.join(work.path, 'dump');
  const ex = await cli(['mongodb', 'export', withUsers.slice(0, 12), '--out', dir]);
  assert.equal(ex.code, 0, ex.stderr);
  const names: string[] = [];
  for await (const d of readBsonFile(path.join(dir, 'admin', 'system.users.bson')))
    names.push(`${deserialize(d).db}.${deserialize(d).user}`);
  assert.ok(names.includes(`${DB}.${USER}`), names.join(','));
});

test('restore without --include-users says the users were left out', async () => {
  const r = await cli(['--json', 'mongodb', 'restore', withUsers.slice(0, 12), '--drop']);
  assert.equal(r.code, 0, r.stderr);
  const skipped = JSON.parse(r.stdout).skipped.find((s: { ns: string }) => s.ns === 'admin.system.users');
  assert.match(skipped.reason, /users not restored \(restore with --include-users/);
});

test('restore --include-users merges the users back (MongoDB) or refuses before touching anything (FerretDB)', async () => {
  await client.db(DB).collection('messages').insertOne({ msg: 'written after the backup' });
  const before = await hashCollection(client, DB, 'messages');
  await client.db(DB).command({ dropUser: USER });
  const r = await cli(['--json', 'mongodb', 'restore', withUsers.slice(0, 12), '--drop', '--include-users']);
  if (external) {
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).usersAndRoles.users >= 1);
    assert.equal(await userExists(), true);
  } else {
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /--include-users: the server has no _mergeAuthzCollections/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    const after = await hashCollection(client, DB, 'messages');
    assert.equal(after.hex(), before.hex(), 'the data was not touched');
    assert.equal(await userExists(), false);
    await client.db(DB).command({ createUser: USER, pwd: 'reader password', roles: [] });
  }
});

test('--include-users on a snapshot without users, or with renaming: one clear line each', async () => {
  let r = await cli(['mongodb', 'restore', withoutUsers.slice(0, 12), '--include-users']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /has no users or roles \(it was taken without --include-users\)/);
  r = await cli([
    'mongodb',
    'restore',
    withUsers.slice(0, 12),
    '--include-users',
    '--ns-from',
    `${DB}.*`,
    '--ns-to',
    'elsewhere.*',
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--include-users cannot be combined with --ns-from\/--ns-to/);
});
