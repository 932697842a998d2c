/* eslint-disable @typescript-eslint/no-explicit-any -- CLI JSON and API objects are untyped here */
/**
 * `lifeboat validate`'s fast per-layer checks, through the real CLI against real peers: FerretDB for a
 * MongoDB backup, etcd + kube-apiserver with the CSI snapshot CRDs for PVC snapshots and cluster state
 * (the test plays the snapshot controller, test/env/kube-controllers.ts), the test Key Vault (a fake over
 * real HTTPS, test/env/keyvault.ts) for secrets, a local Terraform working directory, and a directory of
 * files. Each layer is backed up once; then validation passes, and each kind of breakage behind
 * Lifeboat's back is found and named.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { SecretClient } from '@azure/keyvault-secrets';
import { runCli, type CliResult } from '../env/cli.ts';
import { startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import { createRocketChat, MONGO_PASSWORD, createAzureDiskClasses } from '../env/kube-fixtures.ts';
import { startKeyVault, staticCredential, VALID_TOKEN, type TestKeyVault } from '../env/keyvault.ts';
import { vaultName } from '../../src/sources/secrets/names.ts';
import { mongodbValidator } from '../../src/sources/mongodb/validate.ts';
import type { LayerContext } from '../../src/operations/validate.ts';
import type { Item, Snapshot } from '../../src/core/repository/model.ts';

const NS = 'rocketchat';
const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;
const CHANGED_VALUE = 'changed-behind-lifeboats-back-do-not-print';
const LAYERS = ['mongodb', 'pvc', 'cluster-state', 'secrets', 'terraform', 'files'];

describe('validate: fast checks of every layer against real peers', () => {
  let kube: KubeTestCluster;
  let kv: TestKeyVault;
  let mongo: MongoTestServer;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  const outputs: string[] = [];
  const cli = async (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const r = await runCli(args, { env: { ...env, ...extra } });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const layer = (r: CliResult, name: string) => r.json.results.find((x: any) => x.layer === name);

  before(async () => {
    work = await tempDir('lifeboat-validate-');
    [kube, kv, mongo] = await Promise.all([startKube(), startKeyVault(), startMongo()]);
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pw',
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      KUBECONFIG: kube.kubeconfigPath,
      NODE_EXTRA_CA_CERTS: kv.tls.caFile,
      LIFEBOAT_SECRETS_VAULT: kv.url,
      LIFEBOAT_SECRETS_VAULT_TOKEN: VALID_TOKEN,
      LIFEBOAT_MONGODB_URI: mongo.uri,
    };
    await createRocketChat(kube, NS);
    const a = admin(kube);
    await createAzureDiskClasses(kube);
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    // The CSI snapshot controller: every new VolumeSnapshot becomes ready.
    loop = controllerLoop(async () => {
      for (const vs of (await a.get(VS)).body.items ?? [])
        if (!vs.status)
          await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '2Gi' });
    });

    const client = new MongoClient(mongo.uri);
    try {
      await client.db('validate').dropDatabase();
      await client
        .db('validate')
        .collection<{ _id: string; msg: string }>('messages')
        .insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: `m${i}`, msg: `hello ${i}` })));
      await client
        .db('validate')
        .collection<{ _id: string; name: string }>('users')
        .insertOne({ _id: 'u1', name: 'admin' });
    } finally {
      await client.close();
    }
    const tf = path.join(work.path, 'tf');
    await mkdir(tf, { recursive: true });
    await writeFile(
      path.join(tf, 'terraform.tfstate'),
      JSON.stringify({ version: 4, terraform_version: '1.10.6', serial: 3, lineage: 'lin-a', resources: [] }),
    );
    const files = path.join(work.path, 'files');
    await mkdir(path.join(files, 'sub'), { recursive: true });
    await writeFile(path.join(files, 'a.txt'), 'alpha');
    await writeFile(path.join(files, 'sub/b.txt'), 'beta');

    for (const args of [
      ['init'],
      ['mongodb', 'backup', '--ns-include', 'validate.*'],
      ['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100'],
      ['cluster-state', 'backup', '--namespace', NS],
      ['secrets', 'backup', '--namespace', NS],
      ['terraform', 'backup', '--dir', tf],
      ['files', 'backup', files],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await Promise.all([kube?.stop(), kv?.close(), mongo?.stop()]);
    await work?.cleanup();
  });

  test('every layer ok: the report in --json, exit 0', async () => {
    const r = await cli(['validate', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.ok, true);
    assert.deepEqual(
      r.json.results.map((x: any) => x.layer),
      LAYERS,
    );
    for (const x of r.json.results) {
      assert.equal(x.status, 'ok', `${x.layer}: ${JSON.stringify(x.findings)}`);
      assert.deepEqual(x.findings, []);
      assert.equal(typeof x.detail, 'string');
      assert.equal(x.bytes, undefined, 'nothing is read back without --read-back');
    }
    assert.equal(layer(r, 'pvc').type, 'pvc-snapshots');
    assert.match(layer(r, 'pvc').snapshot, /^[0-9a-f]{64}$/);
    assert.match(layer(r, 'pvc').timestamp, /^\d{8}_\d{6}$/);
    assert.equal(typeof layer(r, 'mongodb').ageHours, 'number');
    assert.equal(layer(r, 'mongodb').maxAgeHours, 26);
    assert.match(layer(r, 'mongodb').detail, /2 collection\(s\), 51 document\(s\)/);
    assert.match(layer(r, 'pvc').detail, /1 of 1 VolumeSnapshot\(s\) readyToUse/);
    assert.match(layer(r, 'secrets').detail, /secret\(s\) in 1 namespace\(s\) match their digests/);
    assert.match(layer(r, 'terraform').detail, /default serial 3/);
    assert.match(layer(r, 'files').detail, /2 file\(s\)/);
    assert.deepEqual(r.json.counts, { ok: 6, warning: 0, stale: 0, missing: 0, failed: 0, damaged: 0 });
    assert.deepEqual(r.json.failing, []);
    assert.equal(r.json.readBack, false);

    // One layer, by layer name or snapshot type; --format json is --json.
    const pvc = await cli(['validate', '--type', 'pvc-snapshots', '--format', 'json']);
    assert.equal(pvc.code, 0, pvc.stderr);
    const doc = JSON.parse(pvc.stdout);
    assert.deepEqual(
      doc.results.map((x: any) => [x.layer, x.status]),
      [['pvc', 'ok']],
    );
    const human = await cli(['validate', '--type', 'mongodb']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^LAYER\s+STATUS\s+NEWEST\s+AGE\s+FINDINGS$/m);
    assert.match(human.stdout, /^mongodb\s+ok\s+\d{8}_\d{6} \([0-9a-f]{8}\)/m);
    const bad = await cli(['validate', '--type', 'volumes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--type must be one of mongodb, pvc, cluster-state, secrets, terraform, files/);
    const badFormat = await cli(['validate', '--format', 'html']);
    assert.equal(badFormat.code, 2);
  });

  test('--format markdown: a heading, a table with one row per layer, findings as a list', async () => {
    const r = await cli(['validate', '--format', 'markdown']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], '## Lifeboat backup validation: passed');
    const header = lines.indexOf('| Layer | Status | Newest snapshot | Age | Findings |');
    assert.ok(header > 0, r.stdout);
    assert.match(lines[header + 1], /^\| --- \| --- \| --- \| --- \| --- \|$/);
    const rows = lines.slice(header + 2).filter((l) => l.startsWith('| '));
    assert.deepEqual(
      rows.map((l) => l.split(' | ')[0].slice(2)),
      LAYERS,
    );
    for (const row of rows) {
      assert.equal(row.split(' | ').length, 5, row);
      assert.match(row, /✅ ok/);
    }
    assert.ok(!r.stdout.includes('### Findings'), 'no findings, no findings list');

    // With a finding (a stale layer): the heading says so and the findings are a list.
    const stale = await cli(['validate', '--type', 'files', '--max-age', '0h', '--format', 'markdown']);
    assert.equal(stale.code, 1);
    assert.match(stale.stdout, /^## Lifeboat backup validation: failed$/m);
    assert.match(stale.stdout, /^\| files \| ⏰ stale \| \d{8}_\d{6} \([0-9a-f]{8}\) \| [\d.]+ h \| 1 \|$/m);
    assert.match(stale.stdout, /^### Findings\n\n- \*\*files\*\* \(failure\): newest files snapshot is/m);
  });

  test('a stale layer: per-layer max age from validate.max-age, named in the summary, exit 1', async () => {
    const config = path.join(work.path, 'lifeboat.yaml');
    await writeFile(config, 'validate:\n  max-age:\n    terraform: 0h\n    pvc-snapshots: 30h\n');
    const r = await cli(['validate', '--config', config, '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.ok, false);
    assert.equal(layer(r, 'terraform').status, 'stale');
    assert.equal(layer(r, 'terraform').maxAgeHours, 0);
    assert.equal(layer(r, 'pvc').maxAgeHours, 30);
    assert.equal(layer(r, 'mongodb').status, 'ok');
    assert.deepEqual(r.json.failing, ['terraform']);
    assert.match(r.json.summary, /^validation failed: terraform \(stale: newest terraform snapshot is/);
    assert.match(r.stderr, /validation failed: terraform \(stale/);

    // --max-age applies to the layers the map does not name; a bad duration is a config error.
    const all = await cli(['validate', '--config', config, '--max-age', '0h', '--json']);
    assert.equal(all.code, 1);
    assert.deepEqual(all.json.failing, ['mongodb', 'cluster-state', 'terraform', 'files']);
    await writeFile(config, 'validate:\n  max-age:\n    mongodb: soon\n');
    const bad = await cli(['validate', '--config', config]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /validate\.max-age\.mongodb/);
    await writeFile(config, 'validate:\n  max-age:\n    volumes: 1d\n');
    const unknown = await cli(['validate', '--config', config]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /validate\.max-age.*volumes/);
  });

  test('without cluster or vault access: `not checked` warnings, not a pass and not a failure', async () => {
    const r = await cli(['validate', '--type', 'pvc', '--json'], {
      KUBECONFIG: path.join(work.path, 'no-such-kubeconfig'),
    });
    assert.equal(r.code, 0, r.stderr);
    const pvc = layer(r, 'pvc');
    assert.equal(pvc.status, 'warning');
    assert.match(pvc.warnings[0], /^not checked: no cluster access/);
    assert.match(r.stderr, /warning: pvc: not checked: no cluster access/);

    const s = await cli(['validate', '--type', 'secrets', '--json'], {
      LIFEBOAT_SECRETS_VAULT_TOKEN: 'denied',
    });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(layer(s, 'secrets').status, 'warning');
    assert.match(layer(s, 'secrets').warnings[0], /^not checked: no Key Vault access/);
    // No vault at all and no secrets snapshot: the layer is not present, and asked for, missing.
    const none = await cli(['validate', '--type', 'secrets', '--json'], { LIFEBOAT_SECRETS_VAULT: '' });
    assert.equal(none.code, 1);
    assert.equal(layer(none, 'secrets').status, 'missing');
    assert.match(layer(none, 'secrets').problem, /no Key Vault given/);
    const present = await cli(['validate', '--json'], { LIFEBOAT_SECRETS_VAULT: '' });
    assert.ok(!present.json.results.some((x: any) => x.layer === 'secrets'));
  });

  test('retention not running: far more snapshots than the keep policy keeps is a warning', async () => {
    for (let i = 0; i < 3; i++)
      assert.equal((await cli(['files', 'backup', path.join(work.path, 'files')])).code, 0);
    const config = path.join(work.path, 'retention.yaml');
    await writeFile(config, 'files:\n  backup:\n    keep-last: 1\n');
    const r = await cli(['validate', '--type', 'files', '--config', config, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const files = layer(r, 'files');
    assert.equal(files.status, 'warning');
    assert.equal(files.snapshots, 4);
    assert.match(
      files.warnings[0],
      /4 files snapshots where the keep policy \(keep-last 1, from `files backup`\) keeps 1: retention is not running/,
    );
    const fine = await cli(['validate', '--type', 'files', '--json']);
    assert.equal(layer(fine, 'files').status, 'ok');
  });

  test('a VolumeSnapshot Lifeboat made but no record names is a warning', async () => {
    await admin(kube).post(VS, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name: 'datadir-mongodb-0-orphan',
        labels: { 'app.kubernetes.io/managed-by': 'lifeboat', 'lifeboat.io/timestamp': '20260101_000000' },
      },
      spec: { source: { persistentVolumeClaimName: 'datadir-mongodb-0' } },
    });
    const r = await cli(['validate', '--type', 'pvc', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(layer(r, 'pvc').status, 'warning');
    assert.match(
      layer(r, 'pvc').warnings[0],
      /1 VolumeSnapshot\(s\) made by Lifeboat are named by no record .*rocketchat\/datadir-mongodb-0-orphan/,
    );
    await admin(kube).del(`${VS}/datadir-mongodb-0-orphan`);
  });

  test("a VolumeSnapshot deleted behind Lifeboat's back: pvc failed, naming it; the event says failure", async () => {
    const before = await cli(['validate', '--type', 'pvc', '--json']);
    const recorded = (await admin(kube).get(VS)).body.items.map((v: any) => v.metadata.name);
    assert.equal(recorded.length, 1);
    assert.equal((await admin(kube).del(`${VS}/${recorded[0]}`)).status, 200);
    const r = await cli(['validate', '--json', '--verbose'], { LIFEBOAT_LOG_FORMAT: 'json' });
    assert.equal(r.code, 1);
    const pvc = layer(r, 'pvc');
    assert.equal(pvc.status, 'failed');
    assert.equal(pvc.snapshot, layer(before, 'pvc').snapshot);
    assert.match(
      pvc.problem,
      new RegExp(`VolumeSnapshot rocketchat/${recorded[0]} \\(PVC datadir-mongodb-0\\) no longer exists`),
    );
    assert.deepEqual(r.json.failing, ['pvc']);
    assert.equal(layer(r, 'mongodb').status, 'ok');
    const events = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'event')
      .map((l) => l.event);
    assert.equal(events.length, 1);
    assert.equal(events[0].operation, 'validate');
    assert.equal(events[0].effect, 'verify');
    assert.equal(events[0].result, 'failure');
    assert.equal(events[0].exitCode, 1);
    assert.equal(events[0].details.failed, 1);
    assert.equal(events[0].details.failing, 'pvc');
    assert.equal(events[0].layer, undefined, 'all layers: no one layer');
    const one = await cli(['validate', '--type', 'mongodb', '--verbose'], { LIFEBOAT_LOG_FORMAT: 'json' });
    const ev = one.stderr
      .split('\n')
      .filter((l) => l.includes('"msg":"event"'))
      .map((l) => JSON.parse(l).event);
    assert.deepEqual([ev[0].layer, ev[0].result], ['mongodb', 'success']);
  });

  test('a Key Vault secret changed after the backup: secrets failed, naming the secret, never its value', async () => {
    const vault = new SecretClient(kv.url, staticCredential(), {
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
    });
    const name = vaultName(NS, 'mongodb-auth');
    const current = await vault.getSecret(name);
    // Tags kept, value changed: only reading the value back and hashing it finds this.
    await vault.setSecret(name, CHANGED_VALUE, { tags: current.properties.tags });
    const r = await cli(['validate', '--type', 'secrets', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const s = layer(r, 'secrets');
    assert.equal(s.status, 'failed');
    assert.match(
      s.problem,
      new RegExp(
        `secret rocketchat/mongodb-auth \\(Key Vault ${name}\\): does not match the manifest digest`,
      ),
    );
    assert.match(r.stderr, /validation failed: secrets \(failed: secret rocketchat\/mongodb-auth/);
    for (const out of outputs) {
      assert.ok(!out.includes(CHANGED_VALUE), 'the changed value is never shown');
      assert.ok(!out.includes(MONGO_PASSWORD), 'the backed-up value is never shown');
    }
  });
});

describe('validate: MongoDB metadata checks (snapshot meta only, no server)', () => {
  const item = (name: string, meta: Record<string, unknown>, records = 2, size = 100): Item => ({
    name,
    kind: name === '.oplog' ? 'oplog' : 'collection',
    meta,
    size,
    sha256: '0'.repeat(64),
    records,
    chunks: [],
  });
  const good = {
    db: 'rc',
    collection: 'a',
    count: 2,
    bytes: 100,
    hash: 'a'.repeat(64),
    crc64: 'b'.repeat(16),
  };
  async function findings(items: Item[], meta: Record<string, unknown>) {
    const out: string[] = [];
    const snapshot = {
      type: 'mongodb',
      meta: { hashAlgorithm: 'sum-sha256', databases: ['rc'], ...meta },
      items,
    } as unknown as Snapshot;
    await mongodbValidator.validate({
      snapshot,
      history: [snapshot],
      signal: new AbortController().signal,
      warn: (_c: string, m: string) => out.push(`warning: ${m}`),
      fail: (_c: string, m: string) => out.push(`failure: ${m}`),
      note: () => {},
    } as unknown as LayerContext);
    return out;
  }

  test('counts and hashes recorded for every collection, agreeing with what the repository stored', async () => {
    assert.deepEqual(await findings([item('rc.a', good)], {}), []);
    const { hash: _h, ...noHash } = good;
    assert.deepEqual(await findings([item('rc.a', noHash)], {}), [
      'failure: collection rc.a: no content hash recorded',
    ]);
    assert.deepEqual(await findings([item('rc.a', good, 3)], {}), [
      'failure: collection rc.a: count 2 recorded, but the repository stored 3 documents',
    ]);
    assert.deepEqual(await findings([item('rc.a', { ...good, db: 'other' })], {}), [
      'failure: database rc is listed but has no collection item',
    ]);
  });

  test('the oplog window is an ordered range whose entries match its item', async () => {
    const oplog = item('.oplog', {}, 5);
    const window = (start: unknown, end: unknown, entries = 5) => ({ oplog: { start, end, entries } });
    assert.deepEqual(await findings([item('rc.a', good), oplog], window({ t: 1, i: 1 }, { t: 2, i: 1 })), []);
    assert.deepEqual(await findings([item('rc.a', good), oplog], window({ t: 3, i: 1 }, { t: 2, i: 1 })), [
      'failure: the oplog window ends (2:1) before it starts (3:1)',
    ]);
    assert.deepEqual(await findings([item('rc.a', good), oplog], window(null, { t: 2, i: 1 }, 4)), [
      'failure: the oplog window records 4 entries, the oplog item holds 5',
    ]);
    assert.deepEqual(await findings([item('rc.a', good)], window(null, { t: 2, i: 1 })), [
      'failure: an oplog window is recorded but the snapshot has no oplog item',
    ]);
  });
});
