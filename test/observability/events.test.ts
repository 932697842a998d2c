/* eslint-disable @typescript-eslint/no-explicit-any -- payloads and CLI JSON are untyped in these tests */
/**
 * One typed event per changing or verifying command, seen where it ends up: the audit log (read back
 * with `audit list`) and a notification channel (a local HTTP receiver). A representative set through
 * the real CLI — init, files backup, mongodb backup (FerretDB with SCRAM, the password in the URI), a
 * failed mongodb backup, secrets backup (kube-apiserver and the test Key Vault), check, forget, key add —
 * checked for operation, layer, result, snapshot and bytes; and no secret value anywhere: not in an
 * event, an audit record, a notification, nor on stdout/stderr.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { runCli } from '../env/cli.ts';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin } from '../env/kube-controllers.ts';
import { startKeyVault, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';

const REPO_PASSPHRASE = 'repo-Passphrase-do-not-print';
const NEW_KEY_PASSPHRASE = 'recovery-Passphrase-do-not-print';
const MONGO_PASSWORD = 'mongo-Pa55word-do-not-print';
const SECRET_VALUE = 'smtp-s3cret-do-not-print';
const SECRETS = [REPO_PASSPHRASE, NEW_KEY_PASSPHRASE, MONGO_PASSWORD, SECRET_VALUE];
const skip = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI) && 'needs a FerretDB with users the test creates';

let work: TempDir;
let mongo: MongoTestServer;
let kube: KubeTestCluster;
let kv: TestKeyVault;
let env: NodeJS.ProcessEnv;
let server: http.Server;
const received: string[] = [];
const outputs: string[] = [];

const cli = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
  const r = await runCli(args, { env: { ...env, ...extra }, cwd: work.path });
  outputs.push(r.stdout, r.stderr);
  return r;
};

before(async () => {
  if (skip) return;
  work = await tempDir('lifeboat-events-');
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  [mongo, kube, kv] = await Promise.all([
    startFerretDB({ auth: { username: 'backup', password: MONGO_PASSWORD } }),
    startKube({ crds: false }),
    startKeyVault(),
  ]);
  const a = admin(kube);
  await a.post('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'rocketchat' },
  });
  await a.post('/api/v1/namespaces/rocketchat/secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'smtp' },
    type: 'Opaque',
    data: { SMTP_PASSWORD: Buffer.from(SECRET_VALUE).toString('base64') },
  });
  const cfg = path.join(work.path, 'lifeboat.yaml');
  await writeFile(
    cfg,
    'notify:\n  channels:\n    - name: all\n      type: json\n      url-env: HOOK_URL\n      on: always\n      dedup-window: 0\n',
  );
  env = {
    LIFEBOAT_CONFIG: cfg,
    LIFEBOAT_REPO: path.join(work.path, 'repo'),
    LIFEBOAT_PASSWORD: REPO_PASSPHRASE,
    LIFEBOAT_KEYSTORE: 'passphrase',
    LIFEBOAT_ACTOR: 'backup-cronjob',
    XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    HOOK_URL: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`,
    KUBECONFIG: kube.kubeconfigPath,
    NODE_EXTRA_CA_CERTS: kv.tls.caFile,
    LIFEBOAT_SECRETS_VAULT: kv.url,
    LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
  };
});
after(async () => {
  await mongo?.stop();
  await kube?.stop();
  await kv?.close();
  server?.close();
  await work?.cleanup();
});

test('each changing or verifying command emits one event: audit log and notification', { skip }, async () => {
  const port = new URL(mongo.uri).port;
  const uri = `mongodb://backup:${MONGO_PASSWORD}@127.0.0.1:${port}/?authSource=admin`;
  assert.equal((await cli(['init'])).code, 0);
  await writeFile(path.join(work.path, 'a.txt'), 'x'.repeat(10_000));
  const files = await cli(['files', 'backup', path.join(work.path, 'a.txt'), '--json']);
  assert.equal(files.code, 0, files.stderr);
  const { MongoClient } = await import('mongodb');
  const client = await MongoClient.connect(uri);
  await client
    .db('chat')
    .collection('messages')
    .insertMany([{ m: 'hi' }, { m: 'there' }]);
  await client.close();
  const mongoBackup = await cli(['mongodb', 'backup', '--uri', uri, '--json']);
  assert.equal(mongoBackup.code, 0, mongoBackup.stderr);
  const wrong = await cli([
    'mongodb',
    'backup',
    '--uri',
    uri.replace(MONGO_PASSWORD, `wrong-${MONGO_PASSWORD}`),
  ]);
  assert.equal(wrong.code, 1);
  const secrets = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--json']);
  assert.equal(secrets.code, 0, secrets.stderr);
  const dry = await cli(['secrets', 'backup', '--namespace', 'rocketchat', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal((await cli(['check'])).code, 0);
  assert.equal((await cli(['forget', '--keep-last', '1'])).code, 0);
  const key = await cli(['key', 'add', '--new-keystore', 'passphrase', '--json'], {
    LIFEBOAT_NEW_PASSWORD: NEW_KEY_PASSPHRASE,
  });
  assert.equal(key.code, 0, key.stderr);

  const list = await cli(['audit', 'list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const events = list.json.map((r: any) => r.event);
  assert.deepEqual(
    events.map((e: any) => [e.operation, e.layer, e.result]),
    [
      ['init', 'repository', 'success'],
      ['files backup', 'files', 'success'],
      ['mongodb backup', 'mongodb', 'success'],
      ['mongodb backup', 'mongodb', 'failure'],
      ['secrets backup', 'secrets', 'success'],
      ['check', 'repository', 'success'],
      ['forget', 'repository', 'success'],
      ['key add', 'repository', 'success'],
    ],
    'one event per command; the dry run none',
  );
  const [, fb, mb, failed, sb, check] = events;
  for (const e of events) {
    assert.equal(e.schema, 'lifeboat.event/v1');
    assert.equal(e.actor, 'backup-cronjob');
    assert.ok(e.host && e.startedAt && e.finishedAt && e.durationMs >= 0);
  }
  assert.equal(fb.snapshot, files.json.id);
  assert.equal(fb.bytesProcessed, 10_000);
  assert.equal(fb.bytesAdded, files.json.bytesAdded);
  assert.equal(fb.items, 1);
  assert.equal(mb.snapshot, mongoBackup.json.id);
  assert.equal(mb.bytesProcessed, mongoBackup.json.totals.bytes);
  assert.ok(mb.bytesProcessed > 0);
  assert.equal(mb.details.documents, 2);
  assert.equal(failed.error.code, 'AUTH');
  assert.equal(failed.exitCode, 1);
  assert.equal(sb.items, 1);
  assert.equal(sb.details.created, 1);
  assert.equal(check.effect, 'verify');
  assert.equal(check.details.errors, 0);

  // The notification channel got the same events (same ids), in the Alertmanager shape.
  const notified = received.map((b) => JSON.parse(b));
  assert.deepEqual(notified.map((n) => n.lifeboat.id).sort(), events.map((e: any) => e.id).sort());
  assert.equal(notified.find((n) => n.lifeboat.result === 'failure').status, 'firing');

  // No secret value anywhere: CLI output, notifications, and the audit records as stored (decrypted).
  const repo = await Repository.open(
    await openBackend(env.LIFEBOAT_REPO!, {}),
    new PassphraseKeystore(REPO_PASSPHRASE, 'test'),
  );
  const stored: string[] = [];
  try {
    for (const name of await readdir(path.join(env.LIFEBOAT_REPO!, 'records')))
      stored.push(JSON.stringify(await repo.records.get(name)));
  } finally {
    await repo.close();
  }
  assert.ok(stored.length >= events.length);
  const everything = [...outputs, ...received, ...stored].join('\n');
  for (const s of SECRETS) assert.ok(!everything.includes(s), `a secret value leaked: ${s}`);
  assert.ok(everything.includes('backup:***@'), 'the URI appears, with its password redacted');
});
