/**
 * Authentication against a FerretDB started with SCRAM users (skipped with LIFEBOAT_TEST_MONGODB_URI: the
 * test needs to know the server's users). Wrong password, missing credentials, and credentials from
 * LIFEBOAT_MONGODB_USERNAME / LIFEBOAT_MONGODB_PASSWORD_FILE instead of the URI.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const external = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI);
const skip = external && 'needs a server whose users the test creates (FerretDB)';
let server: MongoTestServer;
let work: TempDir;
let env: NodeJS.ProcessEnv;
const PASSWORD = 'pa55-w0rd-under-test';

before(async () => {
  if (external) return;
  server = await startFerretDB({ auth: { username: 'backup', password: PASSWORD } });
  work = await tempDir();
  env = {
    LIFEBOAT_PASSWORD: 'auth test',
    XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    LIFEBOAT_REPO: path.join(work.path, 'repo'),
  };
  assert.equal((await runCli(['init'], { env, cwd: work.path })).code, 0);
});

after(async () => {
  await server?.stop();
  await work?.cleanup();
});

const port = () => new URL(server.uri).port;

test('wrong password: one line naming authentication, exit 1, password not printed', { skip }, async () => {
  const r = await runCli(
    [
      'mongodb',
      'backup',
      '--uri',
      `mongodb://backup:wrong-${PASSWORD}@127.0.0.1:${port()}/?authSource=admin`,
    ],
    { env, cwd: work.path },
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^lifeboat: connecting to mongodb:\/\/backup:\*\*\*@127\.0\.0\.1:\d+\/\?authSource=admin: authentication failed — check the user name and password/,
  );
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.doesNotMatch(r.stderr + r.stdout, new RegExp(PASSWORD));
});

test('no credentials: the server requires authentication', { skip }, async () => {
  const r = await runCli(['mongodb', 'backup', '--uri', server.uri], { env, cwd: work.path });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lifeboat: .*requires authentication — give credentials/);
});

test('credentials from LIFEBOAT_MONGODB_USERNAME and LIFEBOAT_MONGODB_PASSWORD_FILE', { skip }, async () => {
  const file = path.join(work.path, 'mongo-password');
  await writeFile(file, PASSWORD + '\n', { mode: 0o600 });
  const r = await runCli(
    // The server holds no collection: an empty backup is an error unless asked for (issue 9, finding 5).
    [
      'mongodb',
      'backup',
      '--uri',
      `mongodb://127.0.0.1:${port()}/?authSource=admin`,
      '--allow-empty',
      '--json',
    ],
    {
      env: { ...env, LIFEBOAT_MONGODB_USERNAME: 'backup', LIFEBOAT_MONGODB_PASSWORD_FILE: file },
      cwd: work.path,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.json.id, /^[0-9a-f]{64}$/);
  const snap = await runCli(['show', r.json.id, '--json'], { env, cwd: work.path });
  assert.doesNotMatch(snap.stdout, new RegExp(PASSWORD));
});
