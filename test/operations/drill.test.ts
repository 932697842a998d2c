/**
 * Restore drills (`lifeboat integrity-check`) against real peers: FerretDB for the MongoDB drill, etcd +
 * kube-apiserver with the CSI snapshot CRDs for the PVC and cluster-state drills (this file plays the
 * snapshot controller, the PV binder and the namespace controller with test/env/kube-controllers.ts), and
 * a local repository. Each drill restores into a scratch target and must leave nothing behind: not when it
 * passes, not when it fails, not when it is stopped (SIGTERM) — and a drill killed outright (SIGKILL) has
 * its leftovers removed by the next one.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { openKeystore } from '../../src/core/keystore/open.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { listOperations } from '../../src/operations/runner.ts';
import { generateSample } from '../../src/sources/mongodb/sample-data.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { startFerretDB, type MongoTestServer } from '../env/ferretdb.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import {
  admin,
  bindPvc,
  controllerLoop,
  deleteNamespace,
  releaseDeletedPvcs,
  setSnapshotStatus,
  type ControllerLoop,
} from '../env/kube-controllers.ts';
import { createRocketChat, createAzureDiskClasses } from '../env/kube-fixtures.ts';

async function drillRecords(repoPath: string) {
  const repo = await Repository.open(
    await openBackend(repoPath),
    await openKeystore({}, { LIFEBOAT_PASSWORD: 'pw' }),
  );
  try {
    return await listOperations(repo, 'drill');
  } finally {
    await repo.close();
  }
}

async function scratchDatabases(uri: string): Promise<string[]> {
  const client = new MongoClient(uri);
  try {
    const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
    return databases.map((d) => d.name).filter((n) => n.startsWith('lifeboat_drill_'));
  } finally {
    await client.close();
  }
}

describe('mongodb restore drills (FerretDB)', () => {
  let server: MongoTestServer;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let repoPath: string;
  let backupId: string;
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...env, ...extra } });

  before(async () => {
    server = await startFerretDB();
    work = await tempDir('lifeboat-drill-');
    repoPath = path.join(work.path, 'repo');
    env = {
      LIFEBOAT_REPO: repoPath,
      LIFEBOAT_PASSWORD: 'pw',
      LIFEBOAT_MONGODB_URI: server.uri,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    const client = new MongoClient(server.uri);
    try {
      await generateSample(client, { db: 'rc', users: 50, rooms: 5, messages: 2000, uploads: 3, seed: 7 });
    } finally {
      await client.close();
    }
    assert.equal((await cli(['init'])).code, 0);
    const b = await cli(['mongodb', 'backup', '--json']);
    assert.equal(b.code, 0, b.stderr);
    backupId = b.json.snapshot ?? b.json.id;
    assert.match(backupId, /^[0-9a-f]{64}$/, JSON.stringify(b.json).slice(0, 300));
  });
  after(async () => {
    await server?.stop();
    await work?.cleanup();
  });

  test('a mongodb drill restores the newest backup into a scratch database, verifies it, drops it, records it', async () => {
    const r = await cli(['integrity-check', '--component', 'mongodb', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.kind, 'drill');
    assert.equal(r.json.schema, 'lifeboat.operation/v1');
    assert.ok(['success', 'warning'].includes(r.json.status), r.json.status);
    assert.deepEqual(
      r.json.steps.map((s: any) => s.name),
      ['read-data', 'mongodb'],
    );
    const [readData, mongo] = r.json.steps;
    assert.equal(readData.status, 'success');
    assert.equal(readData.summary.subset, '1/10');
    assert.equal(mongo.layer, 'mongodb');
    assert.equal(mongo.snapshot, backupId);
    assert.ok(mongo.snapshotTime);
    assert.equal(mongo.budgetMs, 30 * 60_000);
    assert.equal(r.json.budgetMs, 90 * 60_000);
    assert.ok(mongo.summary.collectionsVerified >= 3, JSON.stringify(mongo.summary));
    assert.equal(mongo.summary.collectionsVerified, mongo.summary.collections);
    assert.ok(mongo.summary.documents >= 2000);
    assert.match(mongo.summary.scratchDatabases, /^lifeboat_drill_\d{8}_\d{6}_[0-9a-f]{6}$/);
    assert.deepEqual(await scratchDatabases(server.uri), [], 'scratch database dropped');
    // The source database is as it was.
    const client = new MongoClient(server.uri);
    try {
      assert.ok((await client.db('rc').collection('rocketchat_message').countDocuments()) >= 2000);
    } finally {
      await client.close();
    }
    // The record in the repository is the one printed.
    const records = await drillRecords(repoPath);
    assert.equal(records[0].id, r.json.id);
    assert.equal(records[0].steps[1].snapshot, backupId);
  });

  test('read-data rotates: each drill reads the next subset, and together they read every pack', async () => {
    const subsets: string[] = [];
    const packsRead: number[] = [];
    let packs = 0;
    for (let i = 0; i < 3; i++) {
      const r = await cli([
        'integrity-check',
        '--component',
        'mongodb',
        '--read-data-subset',
        '50%',
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const s = r.json.steps[0];
      subsets.push(s.summary.subset);
      packsRead.push(s.summary.packsRead);
      packs = s.summary.packs;
    }
    assert.deepEqual(subsets, ['1/2', '2/2', '1/2']);
    assert.equal(packsRead[0] + packsRead[1], packs, 'the two halves are all packs');
    assert.equal(packsRead[2], packsRead[0]);
    // The 10 % rotation continues after the first test's 1/10.
    const r = await cli(['integrity-check', '--component', 'mongodb', '--json']);
    assert.equal(r.json.steps[0].summary.subset, '2/10');
  });

  test('retention keeps the newest verified restore point whatever the policy says', async () => {
    const drilled = (await drillRecords(repoPath))[0].steps.find((s) => s.layer === 'mongodb')!.snapshot!;
    assert.equal(drilled, backupId);
    for (let i = 0; i < 2; i++) assert.equal((await cli(['mongodb', 'backup', '--json'])).code, 0);
    const dry = await cli(['forget', '--type', 'mongodb', '--keep-last', '1', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const keep = dry.json.groups.flatMap((g: any) => g.keep);
    const verified = keep.find((k: any) => k.id === drilled);
    assert.ok(verified, `the drilled snapshot is kept: ${JSON.stringify(dry.json)}`);
    assert.ok(
      verified.reasons.some((x: string) => /^verified by drill \d{8}-\d{6}-[0-9a-f]{6}$/.test(x)),
      verified.reasons.join('; '),
    );
    assert.equal(keep.length, 2, 'the newest (keep-last 1) and the verified one');
    const real = await cli(['forget', '--type', 'mongodb', '--keep-last', '1', '--json']);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(real.json.removed, 1);
    const left = await cli(['snapshots', '--type', 'mongodb', '--json']);
    assert.ok(
      (left.json.snapshots ?? left.json).some((s: any) => s.id === drilled),
      'still in the repository',
    );
    // The next drill verifies the newest backup, which then becomes the protected one.
    const d = await cli(['integrity-check', '--component', 'mongodb', '--read-data-subset', 'off', '--json']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.json.steps[0].status, 'skipped');
    const newest = d.json.steps[1].snapshot;
    assert.notEqual(newest, drilled);
    const again = await cli(['forget', '--type', 'mongodb', '--keep-last', '1', '--dry-run', '--json']);
    const kept = again.json.groups.flatMap((g: any) => g.keep).map((k: any) => k.id);
    assert.deepEqual(kept, [newest]);
    backupId = newest;
  });

  test('a drill over its budget fails with TIMEOUT naming the layer, exit 1, scratch dropped', async () => {
    const config = path.join(work.path, 'lifeboat.yaml');
    await writeFile(config, 'drills:\n  budgets:\n    mongodb: 1ms\n');
    const r = await cli(['--config', config, 'integrity-check', '--component', 'mongodb', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const mongo = r.json.steps.find((s: any) => s.name === 'mongodb');
    assert.equal(mongo.status, 'failure');
    assert.equal(mongo.budgetMs, 1);
    assert.equal(mongo.error.code, 'TIMEOUT');
    assert.match(mongo.error.message, /^mongodb took .* over its budget/);
    assert.equal(r.json.status, 'partial');
    assert.deepEqual(await scratchDatabases(server.uri), []);
    // A failed drill verified nothing: the protected restore point stays the previous one.
    const dry = await cli(['forget', '--type', 'mongodb', '--keep-last', '1', '--dry-run', '--json']);
    assert.ok(
      dry.json.groups
        .flatMap((g: any) => g.keep)
        .some(
          (k: any) => k.id === backupId && k.reasons.some((x: string) => x.startsWith('verified by drill')),
        ),
    );
    // The same budget as a flag; a bad one is a usage error.
    const flag = await cli(['integrity-check', '--component', 'mongodb', '--rto', 'mongodb=1ms', '--json']);
    assert.equal(flag.code, 1);
    const bad = await cli(['integrity-check', '--rto', 'mongodb=soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a duration/);
    const badLayer = await cli(['integrity-check', '--component', 'mangodb']);
    assert.equal(badLayer.code, 2);
    assert.match(badLayer.stderr, /--component mangodb is not a drill layer/);
  });

  test('human output: one line per step with its time and budget', async () => {
    const r = await cli(['integrity-check', '--component', 'mongodb', '--read-data-subset', 'off']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^mongodb\s+(success|warning)\s+.*30 min 0 s\s+[0-9a-f]{8}\s+.*collectionsVerified=/m,
    );
    assert.match(r.stdout, /^drill \d{8}-\d{6}-[0-9a-f]{6}: (success|warning) in /m);
    assert.match(r.stderr, /dropped scratch database/);
  });

  test('a deliberately damaged snapshot is detected: exit 3, and the scratch database is gone', async () => {
    const backend = await openBackend(repoPath);
    const saved = new Map<string, Buffer>();
    try {
      // Damage every pack: whichever holds the snapshot's data is damaged.
      for await (const o of backend.list('data')) {
        const bytes = await backend.load({ type: 'data', name: o.name });
        saved.set(o.name, bytes);
        const bad = Buffer.from(bytes);
        bad[Math.floor(bad.length / 3)] ^= 0x55;
        await backend.save({ type: 'data', name: o.name }, bad, { overwrite: true });
      }
      // The restore itself finds it (no read-data step).
      const r = await cli([
        'integrity-check',
        '--component',
        'mongodb',
        '--read-data-subset',
        'off',
        '--json',
      ]);
      assert.equal(r.code, 3, r.stderr);
      const mongo = r.json.steps.find((s: any) => s.name === 'mongodb');
      assert.equal(mongo.status, 'failure');
      assert.equal(mongo.error.code, 'INTEGRITY');
      assert.deepEqual(await scratchDatabases(server.uri), []);
      // The read-data step finds it too, naming the pack.
      const all = await cli([
        'integrity-check',
        '--component',
        'mongodb',
        '--read-data-subset',
        '100%',
        '--json',
      ]);
      assert.equal(all.code, 3);
      assert.equal(all.json.steps[0].status, 'failure');
      assert.equal(all.json.steps[0].error.code, 'INTEGRITY');
      assert.match(all.json.steps[0].error.message, /pack [0-9a-f]{64}/);
      assert.deepEqual(await scratchDatabases(server.uri), []);
      // The guide's wrapper: the same drill, exit 3.
      const { execFile } = await import('node:child_process');
      const code = await new Promise<number>((resolve) =>
        execFile(
          path.resolve('scripts/backup/backup-integrity-check.sh'),
          ['--component', 'mongodb'],
          { env: { ...process.env, ...env, LIFEBOAT_CONFIG: '' } },
          (e) => resolve(e ? ((e as { code?: number }).code ?? -1) : 0),
        ),
      );
      assert.equal(code, 3);
    } finally {
      for (const [name, bytes] of saved)
        await backend.save({ type: 'data', name }, bytes, { overwrite: true });
      await backend.close();
    }
    const ok = await cli(['integrity-check', '--component', 'mongodb', '--read-data-subset', 'off']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('a drill stopped by SIGTERM mid-restore drops its scratch database; one killed outright is cleaned up by the next', async () => {
    // Enough data that the restore is still running when the signal comes.
    const client = new MongoClient(server.uri);
    try {
      await generateSample(client, {
        db: 'big',
        users: 200,
        rooms: 20,
        messages: 40_000,
        uploads: 10,
        seed: 9,
      });
    } finally {
      await client.close();
    }
    assert.equal((await cli(['mongodb', 'backup'])).code, 0);
    const startAndWait = async () => {
      const child = spawnCli(['integrity-check', '--component', 'mongodb', '--read-data-subset', 'off'], {
        env,
      });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      child.stdout!.resume();
      const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      for (let i = 0; i < 600 && (await scratchDatabases(server.uri)).length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      // One scratch database per source database (rc and big).
      assert.ok((await scratchDatabases(server.uri)).length >= 1, `the restore started: ${stderr}`);
      return { child, exited, stderr: () => stderr };
    };

    const term = await startAndWait();
    term.child.kill('SIGTERM');
    assert.equal(await term.exited, 143, term.stderr());
    assert.deepEqual(await scratchDatabases(server.uri), [], term.stderr());
    const interrupted = (await drillRecords(repoPath))[0];
    assert.equal(interrupted.status, 'interrupted');
    assert.equal(interrupted.steps.find((s) => s.name === 'mongodb')!.status, 'interrupted');

    const kill = await startAndWait();
    kill.child.kill('SIGKILL');
    await kill.exited;
    const left = await scratchDatabases(server.uri);
    assert.ok(left.length >= 1, 'a killed drill cannot clean up');
    const next = await cli([
      'integrity-check',
      '--component',
      'mongodb',
      '--read-data-subset',
      'off',
      '--json',
    ]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.json.steps[1].summary.leftoversRemoved, left.length);
    for (const db of left)
      assert.match(next.stderr, new RegExp(`removed database ${db} .*left by an interrupted drill`));
    assert.deepEqual(await scratchDatabases(server.uri), []);
  });
});

describe('pvc and cluster-state restore drills (kube-apiserver)', () => {
  const NS = 'rocketchat';
  const VS = `/apis/snapshot.storage.k8s.io/v1/namespaces/${NS}/volumesnapshots`;
  const PVCS = `/api/v1/namespaces/${NS}/persistentvolumeclaims`;
  let kube: KubeTestCluster;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let loop: ControllerLoop;
  let bindScratch = true;
  const cli = (args: string[]) => runCli(args, { env });
  const get = async (p: string) => (await admin(kube).get(p)).body as any;
  // What the played controllers still have to finish (finalizers) takes a few of their 100 ms rounds.
  const settled = async (list: () => Promise<string[]>) => {
    let left = await list();
    for (let i = 0; i < 100 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await list();
    }
    return left;
  };
  const drillNamespaces = async () =>
    ((await get('/api/v1/namespaces')).items as any[])
      .map((n) => n.metadata.name as string)
      .filter((n) => n.startsWith('lifeboat-drill-'));
  const drillPvcs = async () =>
    ((await get('/api/v1/persistentvolumeclaims?labelSelector=lifeboat.io/drill')).items as any[]).map(
      (p) => `${p.metadata.namespace}/${p.metadata.name}`,
    );

  before(async () => {
    kube = await startKube();
    work = await tempDir('lifeboat-drill-k8s-');
    env = {
      LIFEBOAT_REPO: path.join(work.path, 'repo'),
      LIFEBOAT_PASSWORD: 'pw',
      KUBECONFIG: kube.kubeconfigPath,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    await createRocketChat(kube, NS);
    await createAzureDiskClasses(kube);
    await bindPvc(kube, NS, 'datadir-mongodb-0');
    loop = controllerLoop(async () => {
      // The CSI snapshot controller: every new VolumeSnapshot becomes ready.
      for (const vs of (await get(VS)).items ?? [])
        if (!vs.status)
          await setSnapshotStatus(kube, NS, vs.metadata.name, { readyToUse: true, restoreSize: '2Gi' });
      // The PV binder: a claim restored from a snapshot gets a volume.
      for (const pvc of (await get(PVCS)).items ?? [])
        if (bindScratch && pvc.spec.dataSource && !pvc.spec.volumeName && !pvc.metadata.deletionTimestamp)
          await bindPvc(kube, NS, pvc.metadata.name);
      await releaseDeletedPvcs(kube, NS);
      // The namespace controller: a deleted scratch namespace is emptied and goes away.
      for (const ns of (await get('/api/v1/namespaces')).items ?? [])
        if (ns.metadata.deletionTimestamp && ns.metadata.labels?.['lifeboat.io/drill'])
          await deleteNamespace(kube, ns.metadata.name);
    });
    assert.equal((await cli(['init'])).code, 0);
    const snap = await cli(['pvc', 'snapshot', '--namespace', NS, '--poll-ms', '100', '--json']);
    assert.equal(snap.code, 0, snap.stderr);
    const cs = await cli(['cluster-state', 'backup', '--namespace', NS, '--json']);
    assert.equal(cs.code, 0, cs.stderr);
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    await kube?.stop();
    await work?.cleanup();
  });

  test('pvc and cluster-state drills restore into scratch targets, verify, and leave nothing behind', async () => {
    const before = await get(`${PVCS}/datadir-mongodb-0`);
    const r = await cli([
      'integrity-check',
      '--component',
      'pvc',
      '--component',
      'cluster-state',
      '--read-data-subset',
      '100%',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.json.steps.map((s: any) => [s.name, s.status]),
      [
        ['read-data', 'success'],
        ['pvc', 'success'],
        ['cluster-state', 'success'],
      ],
      JSON.stringify(r.json.steps),
    );
    const [, pvc, cs] = r.json.steps;
    assert.equal(pvc.layer, 'pvc-snapshots');
    assert.equal(pvc.budgetMs, 15 * 60_000);
    assert.equal(pvc.summary.pvcsBound, 1);
    assert.equal(pvc.summary.bytes, 2 * 1024 ** 3);
    assert.equal(cs.layer, 'cluster-state');
    assert.equal(cs.budgetMs, 45 * 60_000);
    assert.ok(cs.summary.objectsCompared >= 5, JSON.stringify(cs.summary));
    assert.ok(cs.summary.objectsLeftOut >= 1, 'the Ingress and the PVC are not created');
    assert.deepEqual(await settled(drillPvcs), []);
    assert.deepEqual(await settled(drillNamespaces), []);
    // The application's own PVC and workload are untouched.
    const after = await get(`${PVCS}/datadir-mongodb-0`);
    assert.equal(after.metadata.uid, before.metadata.uid);
    assert.equal(after.spec.volumeName, before.spec.volumeName);
  });

  test('a scratch PVC that never binds fails the pvc drill (over its budget) and is deleted', async () => {
    bindScratch = false;
    try {
      const r = await cli([
        'integrity-check',
        '--component',
        'pvc',
        '--rto',
        'pvc=3s',
        '--read-data-subset',
        'off',
        '--json',
      ]);
      assert.equal(r.code, 1, r.stderr);
      const pvc = r.json.steps.find((s: any) => s.name === 'pvc');
      assert.equal(pvc.status, 'failure');
      assert.equal(pvc.error.code, 'TIMEOUT');
      assert.match(pvc.error.message, /scratch PVC of rocketchat\/datadir-mongodb-0 .* not Bound after 3 s/);
      assert.deepEqual(await settled(drillPvcs), []);
    } finally {
      bindScratch = true;
    }
  });

  test('with a smoke test configured, the drill ends with a GET that must answer 2xx', async () => {
    const { createServer } = await import('node:http');
    const hits: string[] = [];
    const app = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ success: true, version: '6.12.0' }));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const port = (app.address() as { port: number }).port;
    try {
      const config = path.join(work.path, 'smoke.yaml');
      await writeFile(
        config,
        `drills:\n  smoke-test:\n    url: http://127.0.0.1:${port}/api/info\n    expect-field: success\n`,
      );
      const r = await runCli(
        [
          '--config',
          config,
          'integrity-check',
          '--component',
          'cluster-state',
          '--read-data-subset',
          'off',
          '--json',
        ],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      const smoke = r.json.steps.find((s: any) => s.name === 'smoke-test');
      assert.equal(smoke.status, 'success');
      assert.deepEqual([smoke.summary.status, smoke.summary.version], [200, '6.12.0']);
      assert.deepEqual(hits, ['/api/info']);
      const bad = await cli(['integrity-check', '--smoke-test-url', 'chat.example.com']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /is not an http\(s\) URL/);
    } finally {
      app.close();
    }
  });
});
